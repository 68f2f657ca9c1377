"""One small training run + export shared by the training tests (well under a minute on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import recipe
from training.export import export_checkpoint
from training.models import ModelConfig
from training.train import train


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> dict:
    """mnist-cnn for 1 epoch on 2,000 images, exported: deliberately under-trained."""
    run_dir = tmp_path_factory.mktemp("smoke-run")
    tc = recipe("mnist-cnn", epochs=1, limit_train=2000, device="cpu")
    best = train(tc, ModelConfig(arch="mnist-cnn"), mnist_data_dir, run_dir)
    meta = export_checkpoint(best, run_dir / "export", mnist_data_dir)
    return {"run_dir": run_dir, "best": best, "export": run_dir / "export", "metadata": meta, "train_config": tc}
