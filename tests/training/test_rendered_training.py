"""Digits rendered as uploads and framed by the service's code (training/rendered.py), and the
runs and comparisons that use them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contract.framing import CENTRE, centre_of_mass
from harness.mnist import load_mnist
from training import compare as compare_module
from training import rendered
from training.checkpoint import load_checkpoint
from training.models import ModelConfig
from training.train import train

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def digits(mnist_data_dir: Path) -> np.ndarray:
    images, _ = load_mnist(mnist_data_dir, "train")
    return images[:60]


def test_a_rendering_is_a_photo_framed_as_served(digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    photos = [rendered.render(d, rng) for d in digits[:20]]
    assert all(max(p.size) >= 20 for p in photos)  # pictures, not 28x28 frames
    assert {p.mode for p in photos} <= {"RGB", "L"}
    frames = np.stack([rendered.rendered_frame(d, np.random.default_rng(i)) for i, d in enumerate(digits)])
    assert frames.dtype == np.uint8 and frames.shape == digits.shape
    assert not np.array_equal(frames, digits)
    for frame in frames:  # framed as MNIST is: inked, centred by mass
        assert frame.max() > 200
        cy, cx = centre_of_mass(frame.astype(np.float32))
        assert abs(cy - CENTRE) <= 1.0 and abs(cx - CENTRE) <= 1.0


def test_renderings_are_seeded_cached_and_the_same_in_any_number_of_processes(
    digits: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rendered, "CHUNK", 16)  # several chunks from 60 digits
    one = rendered.rendered_frames(digits, seed=3, cache=tmp_path / "a", processes=1)
    two = rendered.rendered_frames(digits, seed=3, cache=tmp_path / "b", processes=2)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, rendered.rendered_frames(digits, seed=4, cache=tmp_path / "a", processes=1))
    assert len(list((tmp_path / "a").glob("rendered-*.npy"))) == 2 and not list(tmp_path.rglob("*.tmp.npy"))

    def no_rendering(*_: object) -> np.ndarray:
        raise AssertionError("rendered again instead of read from the cache")

    monkeypatch.setattr(rendered, "_render_chunk", no_rendering)
    np.testing.assert_array_equal(rendered.rendered_frames(digits, seed=3, cache=tmp_path / "a"), one)


def test_a_rendered_run_trains_and_records_its_kind(
    smoke_run: dict, mnist_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "cache"))
    tc = replace(smoke_run["train_config"], limit_train=256, augment_kind="rendered", rendered_share=0.5)
    best = train(tc, ModelConfig(arch="mnist-cnn"), mnist_data_dir, tmp_path / "run")
    recorded = load_checkpoint(best)["train_config"]
    assert recorded["augment_kind"] == "rendered" and recorded["rendered_share"] == 0.5
    assert len(list((tmp_path / "cache").glob("rendered-*.npy"))) == 1  # the 256 training digits
    assert (tmp_path / "run" / "rendered_uploads.png").stat().st_size > 1000  # what it trained on, to look at


def test_compare_reports_validation_as_uploads(
    smoke_run: dict, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real renderer takes ~40 s for the 6,000 validation digits; here each is its own "rendering"
    monkeypatch.setattr(compare_module, "rendered_frames", lambda images, seed: images.copy())
    result = compare_module.compare([smoke_run["best"], smoke_run["best"]], mnist_data_dir)
    run = result["runs"][0]
    assert run["val_uploads_accuracy"] == run["val_accuracy"] is not None
    assert result["ensemble"]["val_uploads_accuracy"] == run["val_accuracy"]
    assert "val. uploads" in compare_module.format_comparison(result)
    skipped = compare_module.compare([smoke_run["best"]], mnist_data_dir, uploads=False)
    assert skipped["runs"][0]["val_uploads_accuracy"] is None
    # a version's exported graph (the served one, say) compares beside runs: same answers as its run
    graph, run = compare_module.compare([smoke_run["export"] / "model.onnx", smoke_run["best"]], mnist_data_dir)["runs"]
    assert graph["val_accuracy"] == run["val_accuracy"] and graph["test_accuracy"] == run["test_accuracy"]
