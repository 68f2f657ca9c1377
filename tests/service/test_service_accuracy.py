"""Accuracy through /predict: MNIST as PNGs keeps the model's accuracy; photo-like uploads
(harness.uploads renderings of MNIST test digits) score >= 99% with a 99% model; the hard kinds
(thick marker, tight crop, heavy blur) >= 98%; other writers' digits (scikit-learn's UCI digits,
never trained or tuned on) above what the first model and its preprocessing read."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from harness.images import png_bytes
from harness.uploads import HARD, PHOTO_LIKE, SCENES, png_8x8, sample_uploads
from service.model import Classifier, resolve

pytestmark = [pytest.mark.service, pytest.mark.regression, pytest.mark.slow]
PER_KIND = 100
# The hard kinds together: 98.25% of these 400 before the scene stage, 97.75% behind its first version
# (it took up noisy-pencil photos for their specks of noise), 98.75% now that the plain check leaves
# far specks out (docs/scenes.md). The target is 98%.
HARD_FLOOR = 0.98
# mnist-cnn-0114bd85 with the first preprocessing read 89.87% of the 1,797 UCI digits
# rendered by png_8x8 (`python -m benchmarks.bench_uploads`); the served model must do better.
UCI_BEFORE = 0.8987
SCENE_PER_KIND = 50  # 10 kinds: about a minute through the test client
SCENE_FLOOR = 0.9  # read right per scene kind (before the scene stage: 7-93%)
SCENE_KEPT_FLOOR = 0.85  # is_digit true per scene kind (before: 8-100%)


@pytest.fixture(scope="module")
def direct(mnist_test, repo_root) -> np.ndarray:
    """The served model's own predictions on the raw test tensors."""
    images, _ = mnist_test
    clf = Classifier(resolve(repo_root / "models"), "cpu", 1)
    return clf.probabilities(images.astype(np.float32) / 255.0).argmax(1)


def _predict(client, data: bytes, content_type: str) -> int:
    r = client.post("/predict", content=data, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    return r.json()["digit"]


def test_mnist_pngs_keep_the_model_accuracy(client, mnist_test, direct) -> None:
    """All 10,000 test digits as 28x28 PNGs: at most 0.1 pp below the tensors fed directly."""
    images, labels = mnist_test
    via_http = np.array([_predict(client, png_bytes(img), "image/png") for img in images])
    acc_http, acc_direct = (via_http == labels).mean(), (direct == labels).mean()
    print(f"\n28x28 PNG through /predict: {acc_http:.4f}; tensors directly: {acc_direct:.4f}")
    assert acc_http >= acc_direct - 0.001


def test_photo_like_uploads(client, mnist_test, direct) -> None:
    images, labels = mnist_test
    right: dict[str, list[bool]] = defaultdict(list)
    model_right: dict[str, list[bool]] = defaultdict(list)
    for up in sample_uploads(images, labels, kinds=PHOTO_LIKE, per_kind=PER_KIND, seed=0):
        right[up.kind].append(_predict(client, up.data, up.content_type) == up.label)
        model_right[up.kind].append(bool(direct[up.index] == up.label))
    lines = [
        f"{k:16s} {np.mean(v):.3f} (model on the same digits {np.mean(model_right[k]):.3f})" for k, v in right.items()
    ]
    overall = np.mean([x for v in right.values() for x in v])
    model = np.mean([x for v in model_right.values() for x in v])
    print("\n" + "\n".join(lines) + f"\noverall {overall:.4f} (model {model:.4f})")
    # A 99% model must read 99% of the uploads; a weaker (provisional) one may lose <= 1 pp.
    assert overall >= min(0.99, model - 0.01)
    for kind, hits in right.items():
        assert np.mean(hits) >= min(0.97, np.mean(model_right[kind]) - 0.03), kind


def test_hard_uploads(client, mnist_test) -> None:
    """Thick marker, tight crop and heavy blur: solid ink must reach the model solid."""
    images, labels = mnist_test
    right: dict[str, list[bool]] = defaultdict(list)
    for up in sample_uploads(images, labels, kinds=HARD, per_kind=PER_KIND, seed=0):
        right[up.kind].append(_predict(client, up.data, up.content_type) == up.label)
    overall = np.mean([x for v in right.values() for x in v])
    print("\n" + "\n".join(f"{k:16s} {np.mean(v):.3f}" for k, v in right.items()) + f"\noverall {overall:.4f}")
    assert overall >= HARD_FLOOR
    for kind, hits in right.items():
        assert np.mean(hits) >= 0.95, kind


def test_scene_uploads(client, mnist_test) -> None:
    """Photos of scenes (a sheet on a table, shadows, ruled paper, form boxes, a whiteboard): the
    scene stage hands the model the digit, not the scene. SCENE_PER_KIND each, bounded for CI."""
    images, labels = mnist_test
    right: dict[str, list[bool]] = defaultdict(list)
    kept: dict[str, list[bool]] = defaultdict(list)
    for up in sample_uploads(images, labels, kinds=SCENES, per_kind=SCENE_PER_KIND, seed=0):
        r = client.post("/predict", content=up.data, headers={"content-type": up.content_type})
        assert r.status_code == 200, r.text
        right[up.kind].append(r.json()["digit"] == up.label)
        kept[up.kind].append(r.json()["is_digit"] is not False)
    print("\n" + "\n".join(f"{k:18s} read {np.mean(v):.3f}  is_digit {np.mean(kept[k]):.3f}" for k, v in right.items()))
    for kind in SCENES:
        assert np.mean(right[kind]) >= SCENE_FLOOR, kind
        assert np.mean(kept[kind]) >= SCENE_KEPT_FLOOR, kind


def test_other_writers_digits(client) -> None:
    """scikit-learn's UCI digits (8x8, other writers) as clean PNGs: better than the first preprocessing."""
    load_digits = pytest.importorskip("sklearn.datasets").load_digits
    digits = load_digits()
    answers = np.array([_predict(client, png_8x8(cells), "image/png") for cells in digits.images])
    accuracy = (answers == digits.target).mean()
    print(f"\nUCI digits through /predict: {accuracy:.4f} (first preprocessing: {UCI_BEFORE:.4f})")
    assert accuracy > UCI_BEFORE
