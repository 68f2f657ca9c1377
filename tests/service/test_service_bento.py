"""The container path: `python -m service.bento` packs service/, the contract and the models
served.json names, and the bento serves from a venv that has only the serve install (no torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from contract import read_served
from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bentoml_home")


@pytest.fixture(scope="module")
def built(repo_root: Path, bentoml_home: Path) -> tuple[str, Path]:
    """(tag, bento folder) of a fresh build into a throwaway BENTOML_HOME."""
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [sys.executable, "-m", "service.bento"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tag = done.stdout.strip().splitlines()[-1].split()[1]  # "built mnist:<version> (model ...)"
    name, version = tag.split(":")
    return tag, bentoml_home / "bentos" / name / version


@pytest.fixture(scope="module")
def serve_python(repo_root: Path) -> Path:
    python = repo_root / ".venv-serve" / "bin" / "python"
    if not python.exists():
        pytest.fail("no serve-only venv: run `make install-serve` first", pytrace=False)
    return python


def test_build_writes_the_dockerfile(built) -> None:
    _, bento = built
    dockerfile = bento / "env" / "docker" / "Dockerfile"
    assert dockerfile.is_file() and "FROM " in dockerfile.read_text()


def test_bento_carries_the_named_models_and_serve_dependencies(built, repo_root) -> None:
    _, bento = built
    state = read_served(repo_root / "models")
    packed = sorted(p.name for p in (bento / "src" / "models").iterdir() if p.is_dir())
    assert packed == sorted(state.versions())
    served = state.served
    assert (bento / "src" / "models" / served / "model.onnx").is_file()
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().lower()
    assert "onnxruntime" in requirements and "bentoml" in requirements
    assert "torch" not in requirements
    assert not (bento / "src" / "training").exists()


def test_serve_only_venv_has_no_torch(serve_python: Path) -> None:
    done = subprocess.run([str(serve_python), "-c", "import torch"], capture_output=True)
    assert done.returncode != 0


def test_built_bento_serves_predict(built, bentoml_home, serve_python, repo_root, tmp_path) -> None:
    tag, _ = built
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    with running_service(
        env={"BENTOML_HOME": str(bentoml_home)},
        target=tag,
        python_bin=str(serve_python),
        cwd=tmp_path,  # nothing from the repo checkout on the path
    ) as url:
        r = httpx.post(f"{url}/predict", files={"image": ("one.png", png_bytes(digit), "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["digit"] == 1
        assert r.json()["model_version"] == read_served(repo_root / "models").served
