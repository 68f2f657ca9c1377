"""Start-up: which model gets served, and a missing or corrupt one stops `bentoml serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.server import running_service
from harness.tiny_model import tiny_onnx, write_model_dir

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.server]


def _serve_fails(repo_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bentoml serve` must exit by itself (non-zero), not retry a broken model forever."""
    return subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", ".", "--port", "1"],
        cwd=repo_root,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", **env},
        capture_output=True,
        text=True,
        timeout=120,
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


def _spec(name: str, shape: list) -> dict:
    return {"name": name, "shape": shape, "dtype": "float32"}


BROKEN = {
    # graph bytes that match their sha256 but are no ONNX model
    "not a graph": ({"onnx_bytes": b"\x08\x07garbage that is no onnx graph" * 10}, "onnxruntime cannot load"),
    "wrong input name": (
        {"input": {**_spec("image", ["N", 1, 28, 28]), "range": [0.0, 1.0]}},
        "metadata names input 'image'",
    ),
    "wrong output name": (
        {"outputs": {"logits": _spec("logits", ["N", 10]), "probabilities": _spec("probs", ["N", 10])}},
        "metadata names output 'probs'",
    ),
    "wrong output shape": ({"onnx_bytes": tiny_onnx(classes=9)}, "has shape"),
    # metadata describes a digit detector the graph does not have
    "detector output missing": (
        {
            "outputs": {
                "logits": _spec("logits", ["N", 10]),
                "probabilities": _spec("probabilities", ["N", 10]),
                "digit_score": _spec("digit_score", ["N"]),
            },
            "digit_detector": {"output": "digit_score", "threshold": 0.5},
        },
        "metadata names output 'digit_score'",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_stops_start_up_with_one_line(repo_root: Path, tmp_path: Path, case: str) -> None:
    """Validated in the serving process before workers start: one line naming the file, no crash loop."""
    overrides, says = BROKEN[case]
    version = write_model_dir(tmp_path, **overrides)
    started = time.monotonic()
    done = _serve_fails(repo_root, {"MNIST_MODELS_DIR": str(tmp_path)})
    output = done.stderr + done.stdout
    assert done.returncode != 0, output
    assert says in output and str(tmp_path / version) in output, output
    assert output.count("Traceback") <= 1, output  # the one failure, not workers respawning
    print(f"{case}: exit {done.returncode} after {time.monotonic() - started:.1f}s")
