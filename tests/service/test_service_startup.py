"""Start-up: which model gets served, and a missing or corrupt one stops `bentoml serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.server import running_service
from harness.tiny_model import write_model_dir

pytestmark = [pytest.mark.service, pytest.mark.slow]


def _serve_fails(repo_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bentoml serve` must exit by itself (non-zero), not retry a broken model forever."""
    return subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", ".", "--port", "1"],
        cwd=repo_root, env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", **env},
        capture_output=True, text=True, timeout=120,
    )


def test_serves_the_model_named_by_environment(tmp_path: Path) -> None:
    version = write_model_dir(tmp_path)
    with running_service(env={"MNIST_MODELS_DIR": str(tmp_path)}) as url:
        assert httpx.get(f"{url}/model").json()["version"] == version
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_missing_model_stops_start_up(repo_root: Path, tmp_path: Path) -> None:
    done = _serve_fails(repo_root, {"MNIST_MODELS_DIR": str(tmp_path)})
    assert done.returncode != 0
    assert "served.json" in done.stderr + done.stdout


def test_corrupt_model_stops_start_up(repo_root: Path, tmp_path: Path) -> None:
    version = write_model_dir(tmp_path)
    with (tmp_path / version / "model.onnx").open("r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    done = _serve_fails(repo_root, {"MNIST_MODELS_DIR": str(tmp_path)})
    assert done.returncode != 0
    assert "corrupt" in done.stderr + done.stdout
