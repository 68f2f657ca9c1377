"""Is the deployment (MNIST_SERVICE_URL, or a local server) serving the right model, correctly?

Run before and after a rollout: `MNIST_SERVICE_URL=https://... pytest -m deployed`.
A failing accuracy check names the digits that regressed and leaves a PNG grid of the
newly misclassified images in results/deployed/.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from harness.checks import check_prediction
from harness.uploads import PHOTO_LIKE, Upload, sample_uploads

pytestmark = [pytest.mark.deployed, pytest.mark.slow]

ACCURACY_SLACK = 0.0005  # 0.05 pp: the full test set may score this much under the record
MIN_CLASS_RECALL = 0.99
MIN_PHOTO_ACCURACY = 0.99
PHOTOS_PER_KIND = 60  # 11 kinds x 60 = 660 uploads through /predict


def _recalls(labels: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """Recall of each digit 0-9: (10,) fractions."""
    return np.array([(digits[labels == d] == d).mean() for d in range(10)])


class TestServedModel:
    def test_serves_the_version_models_names(self, reported: dict, served_dir: Path) -> None:
        assert reported["version"] == served_dir.name, (
            f"deployment serves {reported['version']}, models/served.json names {served_dir.name}"
        )

    def test_reported_metadata_matches_models(self, reported: dict, metadata: dict) -> None:
        differ = {
            k: (reported.get(k, "<missing>"), v) for k, v in metadata.items() if reported.get(k, "<missing>") != v
        }
        assert not differ, f"GET /model differs from metadata.json (reported, file): {differ}"

    def test_sha256_is_the_onnx_file_in_models(self, reported: dict, served_dir: Path) -> None:
        digest = hashlib.sha256((served_dir / "model.onnx").read_bytes()).hexdigest()
        assert reported["sha256"] == digest


class TestTestSetAccuracy:
    def test_full_test_set_scores_the_recorded_accuracy(
        self,
        test_set: tuple,
        test_set_predictions: np.ndarray,
        metadata: dict,
        grid_writer: Callable[..., Path],
    ) -> None:
        images, labels = test_set
        digits = test_set_predictions
        accuracy = float((digits == labels).mean())
        floor = metadata["test_accuracy"] - ACCURACY_SLACK
        if accuracy >= floor:
            return
        recalls = _recalls(labels, digits)
        recorded = np.asarray(metadata["per_class_recall"])
        regressed = [d for d in range(10) if recalls[d] < recorded[d] - 1e-9]
        wrong = np.flatnonzero(digits != labels)
        known = set(metadata.get("misclassified_test_indices", []))
        new = [i for i in wrong if i not in known]  # all wrong ones if export recorded none
        grid = grid_writer(
            "test_set_newly_misclassified",
            images[new],
            [f"#{i} {labels[i]}->{digits[i]}" for i in new],
            f"{len(new)} test digits misclassified now but not at export",
        )
        pytest.fail(
            f"accuracy {100 * accuracy:.2f}% < {100 * floor:.2f}% (recorded "
            f"{100 * metadata['test_accuracy']:.2f}% - 0.05 pp); digits that regressed: "
            + ", ".join(f"{d} ({100 * recorded[d]:.2f}% -> {100 * recalls[d]:.2f}%)" for d in regressed)
            + f"; {len(new)} newly misclassified images in {grid}"
        )

    def test_every_digit_is_recalled(
        self,
        test_set: tuple,
        test_set_predictions: np.ndarray,
        grid_writer: Callable[..., Path],
    ) -> None:
        images, labels = test_set
        recalls = _recalls(labels, test_set_predictions)
        weak = [d for d in range(10) if recalls[d] < MIN_CLASS_RECALL]
        if not weak:
            return
        wrong = [i for i in np.flatnonzero(test_set_predictions != labels) if labels[i] in weak]
        grid = grid_writer(
            "weak_digits_misclassified",
            images[wrong],
            [f"#{i} {labels[i]}->{test_set_predictions[i]}" for i in wrong],
            f"misclassified {weak}",
        )
        pytest.fail(
            "recall under 99% for digits "
            + ", ".join(f"{d} ({100 * recalls[d]:.2f}%)" for d in weak)
            + f"; their misclassified images in {grid}"
        )


def _ask(client: httpx.Client, upload: Upload, version: str) -> int:
    """One photo-like upload through /predict, as a multipart file the way browsers send it."""
    ext = upload.content_type.split("/")[1]
    resp = client.post("/predict", files={"image": (f"upload.{ext}", upload.data, upload.content_type)})
    assert resp.status_code == 200, f"{upload.kind}: HTTP {resp.status_code}: {resp.text[:300]}"
    return check_prediction(resp.json(), version)


def _as_seen(upload: Upload) -> np.ndarray:
    """The upload as a person sees it (EXIF applied, transparency on white), for the grid."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(upload.data)))
    paper = Image.new("RGBA", img.size, "white")
    return np.asarray(Image.alpha_composite(paper, img.convert("RGBA")).convert("RGB"))


class TestPhotoLikeUploads:
    def test_photo_like_uploads_score_99_percent(
        self,
        client: httpx.Client,
        test_set: tuple,
        reported: dict,
        grid_writer: Callable[..., Path],
    ) -> None:
        images, labels = test_set
        uploads = list(sample_uploads(images, labels, PHOTO_LIKE, PHOTOS_PER_KIND, seed=0))
        with ThreadPoolExecutor(max_workers=4) as pool:
            digits = list(pool.map(lambda u: _ask(client, u, reported["version"]), uploads))
        wrong = [(u, d) for u, d in zip(uploads, digits, strict=True) if d != u.label]
        accuracy = 1 - len(wrong) / len(uploads)
        if accuracy >= MIN_PHOTO_ACCURACY:
            return
        by_kind = {k: sum(u.kind == k for u, _ in wrong) for k in PHOTO_LIKE}
        grid = grid_writer(
            "photo_like_misclassified",
            [_as_seen(u) for u, _ in wrong],
            [f"{u.kind[:9]} {u.label}->{d}" for u, d in wrong],
            f"{len(wrong)} of {len(uploads)} photo-like uploads misread",
        )
        pytest.fail(
            f"photo-like uploads {100 * accuracy:.2f}% < {100 * MIN_PHOTO_ACCURACY:.0f}%; "
            f"wrong per kind (of {PHOTOS_PER_KIND}): "
            + ", ".join(f"{k} {n}" for k, n in by_kind.items() if n)
            + "; digits misread: "
            + ", ".join(sorted({str(u.label) for u, _ in wrong}))
            + f"; images in {grid}"
        )
