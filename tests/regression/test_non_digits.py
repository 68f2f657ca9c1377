"""The served model's digit detector trusts real digits and flags what is not one, as when it shipped.

At the threshold in metadata.json, through /predict's own framing (service.images.frames.read_frames):
at most 2% of the 10,000 MNIST test digits and of scikit-learn's UCI digits (other writers, 8x8)
flagged; of the held-out non-digit kinds (never in the detector's training), at least FLAG
flagged and an AUROC of at least AUROC against MNIST test digits. The non-digits are
`python -m benchmarks.bench_non_digits`'s own held-out sample (500 per kind, seed 0), so the test
and BENCHMARKS.md agree. An upload framing refuses (422, no ink) counts as flagged.

The floors are the shipped head's measured shares less a margin, not the targets it was built
for (95% flagged, AUROC 0.995): docs/detector.md says by how much those are missed and why.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from contract import resolve
from harness.detector import ScoredModel
from harness.mnist import load_mnist
from harness.non_digits import HELD_OUT_KINDS, TRAINED_KINDS, iter_non_digits
from harness.uploads import png_8x8
from service.errors import BadInput
from service.images.frames import Budget, read_frames

pytestmark = pytest.mark.regression
MODELS = Path(__file__).resolve().parents[2] / "models"
PER_KIND = 500  # held-out uploads per kind: the benchmark's own 2,500 (seed 0), about 45 s to render and frame
MAX_DIGITS_FLAGGED = 0.02  # of MNIST test digits and of UCI digits
# The served head reads 79.6% of these flagged (AUROC 0.9941) through framing alone, and 76.7% once
# the scene stage picks a digit-like piece out of busy pictures (docs/detector.md, docs/scenes.md).
FLAG, AUROC = 0.74, 0.985


def _budget() -> Budget:
    return Budget(image_pixels=1 << 24, request_pixels=1 << 26, deadline=time.monotonic() + 600)


@pytest.fixture(scope="module")
def model() -> ScoredModel:
    m = ScoredModel(resolve(MODELS))
    if m.threshold is None:
        pytest.skip(
            f"the served model {m.version} has no digit detector (no digit_score output or digit_detector in "
            "its metadata.json): the non-digit targets apply once one is served"
        )
    return m


@pytest.fixture(scope="module")
def mnist_scores(model: ScoredModel, mnist_data_dir: Path) -> np.ndarray:
    images, _ = load_mnist(mnist_data_dir, "test")
    score = model(images.astype(np.float32) / 255.0).digit_score  # (10000,)
    assert score is not None
    return score


@pytest.fixture(scope="module")
def held_out(model: ScoredModel, mnist_data_dir: Path) -> dict[str, tuple[np.ndarray, int]]:
    """kind -> (digit_score of each answered upload, uploads refused by framing)."""
    budget = _budget()
    frames: dict[str, list[np.ndarray]] = {k: [] for k in HELD_OUT_KINDS}
    refused = dict.fromkeys(HELD_OUT_KINDS, 0)
    for upload in iter_non_digits(HELD_OUT_KINDS, PER_KIND, seed=0, mnist_dir=mnist_data_dir):
        try:
            frames[upload.kind].append(read_frames([upload.data], budget, "an image"))
        except BadInput:
            refused[upload.kind] += 1
    out = {}
    for kind in HELD_OUT_KINDS:
        score = model(np.concatenate(frames[kind])).digit_score if frames[kind] else np.zeros(0, np.float32)
        assert score is not None
        out[kind] = (score, refused[kind])
    return out


def test_held_out_kinds_were_not_trained_on(model: ScoredModel) -> None:
    """The measure is honest only if the detector never saw these kinds."""
    assert model.detector is not None
    trained = set(model.detector.get("trained_kinds", TRAINED_KINDS))
    assert not trained & set(HELD_OUT_KINDS), f"trained on held-out kinds {sorted(trained & set(HELD_OUT_KINDS))}"


def test_mnist_test_digits_are_kept(model: ScoredModel, mnist_scores: np.ndarray) -> None:
    flagged = float((mnist_scores < model.threshold).mean())
    assert flagged <= MAX_DIGITS_FLAGGED, f"{flagged:.2%} of MNIST test digits flagged at {model.threshold}"


def test_digits_by_other_writers_are_kept(model: ScoredModel) -> None:
    """scikit-learn's UCI digits, 8x8 upscaled: never in the detector's training or selection."""
    from sklearn.datasets import load_digits

    budget = _budget()
    frames = np.concatenate([read_frames([png_8x8(cells)], budget, "an image") for cells in load_digits().images])
    score = model(frames).digit_score
    assert score is not None
    flagged = float((score < model.threshold).mean())
    assert flagged <= MAX_DIGITS_FLAGGED, f"{flagged:.2%} of the UCI digits flagged at {model.threshold}"


def test_held_out_non_digits_are_flagged(model: ScoredModel, held_out: dict[str, tuple[np.ndarray, int]]) -> None:
    per_kind = {k: (int((s < model.threshold).sum()) + r) / (len(s) + r) for k, (s, r) in held_out.items()}
    flagged = sum((s < model.threshold).sum() + r for s, r in held_out.values()) / (PER_KIND * len(held_out))
    shares = ", ".join(f"{k} {v:.1%}" for k, v in per_kind.items())
    assert flagged >= FLAG, f"{flagged:.2%} of held-out non-digits flagged (under {FLAG:.0%}): {shares}"


def test_digit_score_separates_digits_from_held_out_kinds(
    mnist_scores: np.ndarray, held_out: dict[str, tuple[np.ndarray, int]]
) -> None:
    others = np.concatenate([s for s, _ in held_out.values()])
    y = np.r_[np.ones(len(mnist_scores)), np.zeros(len(others))]
    area = float(roc_auc_score(y, np.r_[mnist_scores, others]))
    per_kind = {
        k: roc_auc_score(np.r_[np.ones(len(mnist_scores)), np.zeros(len(s))], np.r_[mnist_scores, s])
        for k, (s, _) in held_out.items()
    }
    worst = ", ".join(f"{k} {v:.4f}" for k, v in sorted(per_kind.items(), key=lambda kv: kv[1]))
    assert area >= AUROC, f"AUROC {area:.4f} (MNIST test digits vs held-out kinds), under {AUROC}: {worst}"
