"""What the serving half may depend on, and what its bento packs."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service import bento

pytestmark = pytest.mark.unit
FORBIDDEN = ("torch", "torchvision", "training")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_service_code_never_imports_the_torch_world(repo_root: Path) -> None:
    files = sorted((repo_root / "service").rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(repo_root)): _imports(f) & set(FORBIDDEN) for f in files}
    assert not {f: bad for f, bad in offenders.items() if bad}


def test_loading_the_service_pulls_in_no_torch(repo_root: Path) -> None:
    probe = (
        "import sys, service.service\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_bentofile_packs_the_served_model(repo_root: Path) -> None:
    served = bento.served_version(repo_root / "models")
    assert bento.packed_version(repo_root / "bentofile.yaml") == served, "run `make bento`"
    assert (repo_root / "models" / served / "model.onnx").is_file()


def test_sync_rewrites_only_the_model_line(repo_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bentofile.yaml"
    shutil.copy(repo_root / "bentofile.yaml", copy)
    before = copy.read_text()
    assert bento.sync(copy, "mnist-cnn-0badc0de")
    after = copy.read_text()
    assert bento.packed_version(copy) == "mnist-cnn-0badc0de"
    assert [a for a, b in zip(after.splitlines(), before.splitlines(), strict=True) if a != b] == [
        line for line in after.splitlines() if "mnist-cnn-0badc0de" in line
    ]
    assert not bento.sync(copy, "mnist-cnn-0badc0de")  # already in sync: untouched


def test_bentofile_installs_what_the_serve_extra_does(repo_root: Path) -> None:
    """The container gets the same requirements as `pip install .[serve]` (markers aside)."""
    import tomllib

    import yaml

    serve = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["serve"]
    packed = yaml.safe_load((repo_root / "bentofile.yaml").read_text())["python"]["packages"]
    assert sorted(r.split(";")[0].strip() for r in serve) == sorted(packed)
