"""The digit head on the classifier's frozen trunk: its data, its calibration, its export in one graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from contract import ModelFiles, read_metadata
from harness.glyph_uploads import TEST_FONTS
from training import glyphs
from training.export import export_checkpoint
from training.head import HeadConfig, balanced_weights, choose_threshold, platt
from training.head_data import DIGIT_KINDS, fit
from training.negatives import KINDS

TINY_SIZES = {"rendered": (40, 20), "low-res": (40, 20), "printed": (40, 20), "negatives": (30, 10)}


def _family(pattern: str) -> str:
    return pattern.split("/")[-2]


def test_font_families_of_training_validation_and_test_are_apart() -> None:
    train = {_family(p) for p in glyphs.FONT_SPLITS["train"]}
    val = {_family(p) for p in glyphs.FONT_SPLITS["validation"]}
    test = {_family(p) for p in TEST_FONTS}
    assert not train & val and not train & test and not val & test
    assert "liberation" in test  # the harness's held-out symbols are drawn in Liberation


def test_font_letters_leave_out_the_lookalikes() -> None:
    """Letters a font prints as a digit are reported apart, never drawn as font-letters negatives."""
    assert not set(glyphs.LOOKALIKES) & set(glyphs.LETTERS)
    assert set(glyphs.LETTERS) | set(glyphs.LOOKALIKES) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize("kind", glyphs.FURNITURE)
def test_form_furniture_draws_ink(kind: str) -> None:
    ink = glyphs.furniture(np.random.default_rng(0), kind)
    assert ink.shape == (glyphs.CANVAS, glyphs.CANVAS) and ink.max() == 1.0


def test_low_resolution_digits_are_blocks_or_blurs_of_the_digit() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    for seed in range(6):
        ink = glyphs.low_resolution(digit, np.random.default_rng(seed))
        assert ink.shape == (64, 64) and ink.min() >= 0.0 and ink.max() <= 1.0
        assert ink[:, 16:48].sum() > 0.95 * ink.sum()  # the bar stays where it was, if blockier


def test_platt_calibration_matches_the_share_of_digits() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.5).astype(np.int64)
    z = rng.normal(0, 1, len(y)) + 3.0 * (2 * y - 1)  # separable-ish logits, three times too sharp
    a, b = platt(z, y, np.ones(len(y)))
    p = 1 / (1 + np.exp(-(a * z + b)))
    for lo in (0.1, 0.5, 0.8):
        m = (p >= lo) & (p < lo + 0.1)
        assert abs(y[m].mean() - p[m].mean()) < 0.05


def test_balanced_weights_and_the_threshold_keep_every_digit_kind() -> None:
    groups = np.array(["mnist"] * 90 + ["printed"] * 10 + ["letters"] * 50)
    y = np.array([1] * 100 + [0] * 50)
    w = balanced_weights(y, groups)
    assert np.isclose(w[y == 1].sum(), 0.5) and np.isclose(w[groups == "printed"].sum(), 0.25)
    score = np.r_[np.linspace(0.5, 1, 90), np.linspace(0.2, 0.3, 10), np.zeros(50)]
    t = choose_threshold(score, y, groups, keep=0.9)
    assert (score[groups == "printed"] >= t).mean() >= 0.9 and (score[groups == "mnist"] >= t).all()


@pytest.fixture(scope="module")
def with_head(smoke_run: dict, mnist_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A head trained for one epoch on a few frames beside the smoke run's export, exported with it."""
    out = tmp_path_factory.mktemp("head")
    classifier = smoke_run["export"] / "model.onnx"
    head = fit(
        classifier, mnist_data_dir, out / "run", HeadConfig(epochs=1, steps=4, batch_size=64), TINY_SIZES, limit=300
    )
    meta = export_checkpoint(classifier, out / "export", mnist_data_dir, detector=head)
    return {"classifier": classifier, "export": out / "export", "metadata": meta}


def test_head_exports_a_calibrated_digit_score_in_the_same_graph(with_head: dict, smoke_run: dict) -> None:
    read_metadata(ModelFiles.of(with_head["export"]))  # the contract accepts it
    det = with_head["metadata"]["digit_detector"]
    assert det["output"] == "digit_score" and 0.0 < det["threshold"] < 1.0
    assert det["design"] == "head on the classifier's frozen trunk"
    assert det["trained_kinds"] == list(KINDS) and det["digit_kinds"] == list(DIGIT_KINDS)
    assert det["calibration"]["method"].startswith("Platt") and 0.0 <= det["calibration"]["ece"] <= 1.0
    x = np.random.default_rng(0).random((32, 1, 28, 28), dtype=np.float32)
    alone = ort.InferenceSession(str(with_head["classifier"]), providers=["CPUExecutionProvider"])
    both = ort.InferenceSession(str(with_head["export"] / "model.onnx"), providers=["CPUExecutionProvider"])
    (p1,) = alone.run(["probabilities"], {"pixels": x})
    p2, score = both.run(["probabilities", "digit_score"], {"pixels": x})
    assert np.abs(p1 - p2).max() < 1e-5  # the trunk is frozen: the digits read exactly as before
    assert score.shape == (32,) and ((score >= 0) & (score <= 1)).all()
    assert with_head["metadata"]["test_accuracy"] == smoke_run["metadata"]["test_accuracy"]
