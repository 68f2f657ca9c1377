"""The model that models/ serves still scores what its metadata promises on the full test set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract import ModelFiles, read_metadata, read_served, sha256_file
from training.data import load_split
from training.evaluate import classification_report, ort_session, predict_probabilities

pytestmark = pytest.mark.regression
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def served() -> tuple[Path, dict]:
    folder = MODELS / str(read_served(MODELS).served)
    read_metadata(ModelFiles.of(folder), check_sha256=False)  # the contract's checks
    return folder, json.loads((folder / "metadata.json").read_text())


def test_sha256_matches_metadata(served: tuple[Path, dict]) -> None:
    folder, meta = served
    assert sha256_file(folder / "model.onnx") == meta["sha256"]
    assert meta["version"] == folder.name


def test_full_test_set_accuracy(served: tuple[Path, dict], mnist_data_dir: Path) -> None:
    folder, meta = served
    x, y = (t.numpy() for t in load_split(mnist_data_dir, train=False))
    pred = predict_probabilities(ort_session(folder / "model.onnx"), x).argmax(1)
    report = classification_report(y, pred)
    acc, recorded = report["accuracy"], meta["test_accuracy"]
    assert acc >= recorded - 0.0005, f"accuracy {acc:.4%} fell more than 0.05 pp under the recorded {recorded:.4%}"
    assert acc >= 0.995, f"served model scores {acc:.4%}, under the 99.5% floor"
    weak = {d: r for d, r in enumerate(report["per_class_recall"]) if r < 0.99}
    assert not weak, f"class recall under 99% for digits {weak}"
    now_wrong = set(np.flatnonzero(pred != y).tolist()) - set(meta.get("misclassified_test_indices", []))
    assert len(now_wrong) <= 5, f"test images newly misclassified since export: {sorted(now_wrong)[:20]}"
