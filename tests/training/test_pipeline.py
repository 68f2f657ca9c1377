"""`mnist pipeline` runs train -> fine-tune -> export -> evaluate -> promote in one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract import read_served
from training.cli import main

pytestmark = [pytest.mark.training, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_pipeline_end_to_end(tmp_path: Path, mnist_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, models = tmp_path / "run", tmp_path / "models"
    code = main([
        "pipeline", "--arch", "mnist-cnn", "--epochs", "1", "--limit-train", "1000", "--device", "cpu",
        "--data-dir", str(mnist_data_dir), "--run-dir", str(run_dir), "--models-dir", str(models), "--force",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    meta = json.loads((run_dir / "finetune" / "export" / "metadata.json").read_text())
    assert meta["train_config"]["init_from"] == str(run_dir / "best.pt")  # provenance of the fine-tune stage
    assert meta["train_config"]["ema_decay"] == 0.998
    assert read_served(models).served == meta["version"]
    for png in ("confusion_matrix.png", "misclassified.png"):
        assert (run_dir / "finetune" / "export" / "eval" / png).is_file()
    assert "serving" in capsys.readouterr().out
