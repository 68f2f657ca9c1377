"""A smoke training run ends in a valid, self-describing ONNX export that agrees with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from contract import sha256_file
from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.compare import compare, format_comparison
from training.config import recipe
from training.export import PARITY_TOLERANCE, ExportError, check_export, export_onnx
from training.models import ModelConfig, build_model
from training.train import train

pytestmark = pytest.mark.training


def test_run_dir_has_checkpoints_metrics_and_curves(smoke_run: dict) -> None:
    run_dir: Path = smoke_run["run_dir"]
    for name in ("best.pt", "last.pt", "metrics.json", "metrics.csv", "training_curves.png"):
        assert (run_dir / name).is_file(), name
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert 0.0 < history[0]["val_acc"] <= 1.0


def test_checkpoint_describes_itself(smoke_run: dict) -> None:
    state = load_checkpoint(smoke_run["best"])
    assert state["model_config"]["arch"] == "mnist-cnn"
    assert state["train_config"] == smoke_run["train_config"].to_dict()
    _, mc, tc, _ = model_from_checkpoint(smoke_run["best"])
    assert mc.arch == "mnist-cnn" and tc.limit_train == 2000


def test_export_is_valid_onnx_with_dynamic_batch(smoke_run: dict) -> None:
    path = smoke_run["export"] / "model.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = smoke_run["metadata"]
    assert session.get_inputs()[0].name == meta["input"]["name"]
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    for n in (1, 7, 64):
        logits, probs = session.run(None, {meta["input"]["name"]: np.zeros((n, 1, 28, 28), np.float32)})
        assert logits.shape == probs.shape == (n, 10)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_metadata_records_everything(smoke_run: dict) -> None:
    meta = json.loads((smoke_run["export"] / "metadata.json").read_text())
    assert meta["sha256"] == sha256_file(smoke_run["export"] / "model.onnx")
    assert meta["version"] == f"mnist-cnn-{meta['sha256'][:8]}"
    assert len(meta["per_class_recall"]) == 10 and 0 < meta["test_accuracy"] < 1
    assert meta["parity_max_abs_diff"] < PARITY_TOLERANCE
    assert set(meta["dataset"]["files"]) == {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    }  # fmt: skip
    for key in ("opset", "parameters", "train_config", "model_config", "code_revision", "trained_at"):
        assert meta[key] is not None, key


@pytest.mark.parametrize("arch", ["lenet5", "seed-small", "seed-deep", "mnist-cnn"])
def test_export_parity_every_architecture(arch: str, tmp_path: Path, mnist_data_dir: Path) -> None:
    model = build_model(ModelConfig(arch=arch)).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8)
    assert check_export(model, path, images) < PARITY_TOLERANCE


def test_export_fails_loudly_when_graph_disagrees(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="seed-small")).eval()
    export_onnx(model, tmp_path / "model.onnx")
    with torch.no_grad():  # the PyTorch model drifts away from what was exported
        model[1].weight.add_(0.5)
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8)
    with pytest.raises(ExportError, match="disagree"):
        check_export(model, tmp_path / "model.onnx", images)


def test_training_is_reproducible_on_cpu(tmp_path: Path, mnist_data_dir: Path) -> None:
    tc = recipe("seed-small", limit_train=512, device="cpu")
    a = load_checkpoint(train(tc, ModelConfig(arch="seed-small"), mnist_data_dir, tmp_path / "a"))
    b = load_checkpoint(train(tc, ModelConfig(arch="seed-small"), mnist_data_dir, tmp_path / "b"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # seed-small trains on all 60,000 (no validation split): `mnist compare` reports test only
    # (512 images and two epochs leave it untrained: only the shape of the answer is checked)
    result = compare([tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt"], mnist_data_dir)
    assert result["val_accuracy"] == {"mean": None, "sd": None}
    assert result["runs"][0]["test_accuracy"] == result["runs"][1]["test_accuracy"] is not None
    assert "n/a" in format_comparison(result)


def test_resume_continues_where_it_stopped(tmp_path: Path, mnist_data_dir: Path) -> None:
    mc = ModelConfig(arch="seed-small")
    full = load_checkpoint(train(recipe("seed-small", epochs=2, limit_train=512, device="cpu"), mc, mnist_data_dir,
                                 tmp_path / "full") .with_name("last.pt"))  # fmt: skip
    train(recipe("seed-small", epochs=1, limit_train=512, device="cpu"), mc, mnist_data_dir, tmp_path / "part")
    state = load_checkpoint(tmp_path / "part" / "last.pt")
    assert state["epoch"] == 1
    resumed = train(recipe("seed-small", epochs=2, limit_train=512, device="cpu"), mc, mnist_data_dir,
                    tmp_path / "part", resume=True)  # fmt: skip
    last = load_checkpoint(resumed.with_name("last.pt"))
    assert last["epoch"] == 2 and len(last["history"]) == 2
    for k in full["model"]:
        assert torch.allclose(full["model"][k], last["model"][k], atol=1e-6), k
