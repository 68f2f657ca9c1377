"""The non-digit detector: its negatives, its training beside a frozen classifier, its export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract import ModelFiles, read_metadata
from training.detector import TURNS, DetectorConfig, train_detector, turn
from training.export import ExportError, export_checkpoint
from training.negatives import KINDS, make

TINY = DetectorConfig(epochs=1, steps=4, negatives_per_kind=40, val_negatives_per_kind=10)


@pytest.mark.parametrize("kind", KINDS)
def test_negatives_are_framed_like_mnist_and_reproducible(kind: str) -> None:
    digits = np.zeros((50, 28, 28), np.uint8)
    digits[:, 6:22, 12:16] = 255  # stand-in digits: a bar each
    a, b = make(kind, 20, seed=3, digits=digits), make(kind, 20, seed=3, digits=digits)
    assert a.shape == (20, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert (a.reshape(20, -1).max(1) == 255).all()  # every frame has ink at full strength
    ys, xs = np.indices((28, 28))
    for frame in a.astype(np.float64):
        rows, cols = np.flatnonzero(frame.max(1) > 0), np.flatnonzero(frame.max(0) > 0)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22  # fits MNIST's 20x20 box
        cy, cx = (ys * frame).sum() / frame.sum(), (xs * frame).sum() / frame.sum()
        at_edge = min(rows[0], cols[0]) <= 1 or max(rows[-1], cols[-1]) >= 26  # kept inside, as MNIST does
        assert at_edge or (abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5)  # else centred by mass


def test_turned_negatives_are_mirrored_or_turned_one_way_each() -> None:
    x = torch.randint(0, 256, (400, 28, 28), dtype=torch.uint8)
    assert torch.equal(turn(x, 0.0, torch.Generator().manual_seed(0)), x)
    out = turn(x, 1.0, torch.Generator().manual_seed(0))
    used = [next(w for w, f in enumerate(TURNS) if torch.equal(out[i], f(x[i]))) for i in range(len(x))]
    assert set(used) == set(range(len(TURNS))) and len(TURNS) == 5  # every way drawn, each image one of them
    half = turn(x, 0.5, torch.Generator().manual_seed(0))
    kept = sum(torch.equal(half[i], x[i]) for i in range(len(x)))
    assert 150 < kept < 250


@pytest.fixture(scope="module")
def with_detector(smoke_run: dict, mnist_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke run's export, a detector trained beside it for a few steps, and both exported together."""
    out = tmp_path_factory.mktemp("detector")
    classifier = smoke_run["export"] / "model.onnx"
    detector = train_detector(classifier, mnist_data_dir, out / "run", TINY)
    meta = export_checkpoint(classifier, out / "export", mnist_data_dir, detector=detector)
    return {"classifier": classifier, "detector": detector, "export": out / "export", "metadata": meta}


def test_export_adds_digit_score_with_a_threshold_fitted_on_validation(with_detector: dict) -> None:
    meta = read_metadata(ModelFiles.of(with_detector["export"]))  # the contract accepts it
    raw = with_detector["metadata"]
    assert raw["outputs"]["digit_score"] == {"name": "digit_score", "shape": ["N"]}
    det = raw["digit_detector"]
    assert 0.0 < det["threshold"] < 1.0 and det["keeps"] == TINY.keep
    assert "validation" in det["fitted_on"] and det["trained_kinds"] == list(KINDS)
    assert meta.version == raw["version"]


def test_the_detector_leaves_the_digits_alone(with_detector: dict, smoke_run: dict) -> None:
    """Same probabilities as the classifier exported alone: no loss of digit accuracy, by construction."""
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    alone = ort.InferenceSession(str(with_detector["classifier"]), providers=["CPUExecutionProvider"])
    both = ort.InferenceSession(str(with_detector["export"] / "model.onnx"), providers=["CPUExecutionProvider"])
    (p1,) = alone.run(["probabilities"], {"pixels": x})
    p2, score = both.run(["probabilities", "digit_score"], {"pixels": x})
    assert np.abs(p1 - p2).max() < 1e-5
    assert score.shape == (64,) and ((score >= 0) & (score <= 1)).all()
    assert with_detector["metadata"]["test_accuracy"] == smoke_run["metadata"]["test_accuracy"]


def test_a_detector_exports_only_beside_its_own_classifier(
    with_detector: dict, smoke_run: dict, mnist_data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="was trained beside"):
        export_checkpoint(smoke_run["best"], tmp_path, mnist_data_dir, detector=with_detector["detector"])
