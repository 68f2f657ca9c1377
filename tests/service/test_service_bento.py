"""BentoML's own workflow on a fresh clone, in the serve-only install (no torch): `bentoml build`
packs the models the service declares from the model store (put there from models/ on the first
build), `bentoml serve <tag>` answers from them, and a promotion or rollback reaches the next build
with no other step. `bentoml models export` / `import` move a version between stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from contract import read_served
from harness.images import png_bytes
from harness.mnist import load_mnist
from harness.server import running_service
from harness.tiny_model import write_model_dir
from training.registry import promote, rollback

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def serve_python(repo_root: Path) -> Path:
    python = repo_root / ".venv-serve" / "bin" / "python"
    if not python.exists():
        pytest.fail("no serve-only venv: run `make install-serve` first", pytrace=False)
    return python


def fresh_clone(repo_root: Path, dest: Path) -> Path:
    """The files a clone has (git's tracked files, as in this working tree): no venvs, no build/."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo_root, check=True, capture_output=True, text=True
    ).stdout
    for rel in filter(None, tracked.split("\0")):
        if (repo_root / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, dest / rel)
    return dest


def bentoml(python: Path, home: Path, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The serve-only install's `bentoml` CLI with its own BENTOML_HOME (an empty store at first)."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [str(python), "-m", "bentoml", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def build(python: Path, home: Path, clone: Path) -> tuple[str, dict]:
    """`bentoml build` from the clone's root: the bento's tag and its bento.yaml."""
    tag = bentoml(python, home, "build", "--output", "tag", cwd=clone).stdout.strip().splitlines()[-1]
    tag = tag.removeprefix("__tag__:")
    name, version = tag.split(":")
    return tag, yaml.safe_load((home / "bentos" / name / version / "bento.yaml").read_text())


def pins(requirements: Path) -> dict[str, str]:
    """name -> version of a pinned requirements file (`name==version ; marker`)."""
    lines = [line.split(";")[0].strip() for line in requirements.read_text().splitlines()]
    return dict(line.lower().split("==") for line in lines if line and not line.startswith("#"))


def packed(info: dict) -> list[str]:
    """The model versions a bento packs, in the order the service declares them."""
    return [m["tag"].split(":", 1)[1] for s in info["services"] for m in s["models"]]


@pytest.fixture(scope="module")
def clone(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_clone(repo_root, tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml_home")


@pytest.fixture(scope="module")
def built(serve_python: Path, home: Path, clone: Path) -> tuple[str, dict]:
    return build(serve_python, home, clone)


def test_serve_only_venv_has_no_torch(serve_python: Path) -> None:
    done = subprocess.run([str(serve_python), "-c", "import torch"], capture_output=True)
    assert done.returncode != 0


def test_build_packs_the_served_versions_from_the_store(built, clone: Path, home: Path, serve_python: Path) -> None:
    tag, info = built
    state = read_served(clone / "models")
    assert packed(info) == state.versions()  # the served one first, then those v2 serves by name
    assert info["labels"]["model_version"] == state.served
    listed = bentoml(serve_python, home, "models", "list", "-o", "json", cwd=clone).stdout
    assert {m["tag"] for m in yaml.safe_load(listed)} == {f"mnist:{v}" for v in state.versions()}
    bento = home / "bentos" / tag.replace(":", "/")
    assert not [p for p in (bento / "src" / "models").iterdir() if p.is_dir()]  # files only in the store
    assert not (bento / "src" / "training").exists()


def test_bento_installs_the_locked_serve_packages(built, clone: Path, home: Path) -> None:
    tag, _ = built
    bento = pins(home / "bentos" / tag.replace(":", "/") / "env" / "python" / "requirements.txt")
    locked = pins(clone / "deploy" / "requirements" / "serve.txt")
    assert bento == locked  # BentoML adds its own pin: the locked one
    assert "onnxruntime" in bento and "torch" not in bento


def test_built_bento_serves_predict(built, home: Path, serve_python: Path, mnist_data_dir: Path, tmp_path) -> None:
    tag, info = built
    images, labels = load_mnist(mnist_data_dir, "test")
    with running_service(
        env={"BENTOML_HOME": str(home), "MNIST_WORKERS": "1"},
        target=tag,
        python_bin=str(serve_python),
        cwd=tmp_path,  # nothing from a checkout on the path: code from the bento, models from the store
    ) as url:
        for i in range(3):
            r = httpx.post(f"{url}/predict", files={"image": ("d.png", png_bytes(images[i]), "image/png")})
            assert r.status_code == 200, r.text
            assert r.json()["digit"] == labels[i]
            assert r.json()["model_version"] == info["labels"]["model_version"]


def test_promotion_then_rollback_reach_the_next_build(
    built, clone: Path, home: Path, serve_python: Path, tmp_path: Path
) -> None:
    before = read_served(clone / "models")
    export = tmp_path / "export"
    new = write_model_dir(export, serve=False)
    promote(export / new, clone / "models", force=True)  # a tiny model: under the accuracy floor
    _, info = build(serve_python, home, clone)
    assert packed(info)[:2] == [new, before.served] and info["labels"]["model_version"] == new
    rollback(clone / "models")
    _, info = build(serve_python, home, clone)
    assert packed(info)[0] == before.served and info["labels"]["model_version"] == before.served


def test_a_build_without_its_model_fails_with_one_clear_line(repo_root: Path, serve_python: Path, tmp_path) -> None:
    clone = fresh_clone(repo_root, tmp_path / "clone")
    served = read_served(clone / "models").served
    shutil.rmtree(clone / "models" / str(served))
    done = bentoml(serve_python, tmp_path / "home", "build", cwd=clone, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: [bentos] `build` failed: ") and f"model {served} is missing" in last, last
    assert "nor in BentoML's model store" in last, last


def test_models_export_and_import_move_a_version(built, clone: Path, home: Path, serve_python: Path, tmp_path):
    served = read_served(clone / "models").served
    archive = tmp_path / "model.bentomodel"
    bentoml(serve_python, home, "models", "export", f"mnist:{served}", str(archive), cwd=tmp_path)
    other = tmp_path / "other-home"
    bentoml(serve_python, other, "models", "import", str(archive), cwd=tmp_path)
    got = bentoml(serve_python, other, "models", "get", f"mnist:{served}", "--output", "json", cwd=tmp_path)
    shown = json.loads(got.stdout)
    assert shown["labels"]["sha256"] == shown["metadata"]["sha256"]
    assert (other / "models" / "mnist" / served / "model.onnx").is_file()
