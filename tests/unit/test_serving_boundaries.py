"""What the serving half may depend on, and what its bento packs."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contract import Served, read_served, write_served
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
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_contract_and_harness_stay_torch_free(repo_root: Path) -> None:
    """Both halves import the contract, every room imports the harness: neither may drag torch in."""
    files = sorted([*(repo_root / "contract").rglob("*.py"), *(repo_root / "harness").rglob("*.py")])
    offenders = {str(f.relative_to(repo_root)): _imports(f) & {*FORBIDDEN, "service"} for f in files}
    assert files and not {f: bad for f, bad in offenders.items() if bad}


@pytest.mark.parametrize(
    ("room", "never"),
    [
        ("training", {"service", "harness", "loadtests", "benchmarks", "tests"}),  # meets service only at contract/
        ("harness", {"training", "service", "loadtests", "benchmarks", "tests"}),
        ("loadtests", {"tests", "benchmarks", "training"}),
        ("benchmarks", {"tests", "loadtests"}),
    ],
)
def test_rooms_import_one_way(repo_root: Path, room: str, never: set[str]) -> None:
    files = sorted((repo_root / room).rglob("*.py"))
    offenders = {str(f.relative_to(repo_root)): _imports(f) & never for f in files}
    assert files and not {f: bad for f, bad in offenders.items() if bad}


def test_no_room_edits_sys_path(repo_root: Path) -> None:
    """Rooms import one way (installed packages, `python -m`), never by editing sys.path."""
    rooms = ("contract", "harness", "service", "training", "loadtests", "benchmarks", "tests")
    files = [f for room in rooms for f in (repo_root / room).rglob("*.py")]
    assert files
    assert not [
        str(f)
        for f in files
        if "sys.path." in f.read_text().replace("sys.path.'", "") and f.name != "test_serving_boundaries.py"
    ]


def test_bento_packs_served_json_and_the_versions_it_names(repo_root: Path) -> None:
    options = bento.build_options(repo_root)
    state = read_served(repo_root / "models")
    packed = [i for i in options["include"] if i.startswith("models/")]
    assert packed == ["models/served.json", *(f"models/{v}/**" for v in state.versions())]
    assert options["labels"]["model_version"] == state.served
    assert "contract/**/*.py" in options["include"]


def test_bento_follows_a_promotion_with_no_hand_step(tmp_path: Path) -> None:
    """served.json is read at build time: nothing in the repo goes stale when it changes."""
    shutil.copy(Path(bento.REPO) / "bentofile.yaml", tmp_path / "bentofile.yaml")
    shutil.copy(Path(bento.REPO) / "pyproject.toml", tmp_path / "pyproject.toml")
    write_served(tmp_path / "models", Served(served="mnist-cnn-0badc0de", history=["lenet5-12345678"]))
    include = bento.build_options(tmp_path)["include"]
    assert include[-2:] == ["models/mnist-cnn-0badc0de/**", "models/lenet5-12345678/**"]


@pytest.mark.parametrize(("extra", "runtime"), [("serve", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_bento_installs_exactly_the_extra(repo_root: Path, extra: str, runtime: str) -> None:
    """One dependency list: `serve` and `gpu` are serve-base plus one runtime, and the bento gets that list."""
    import tomllib

    extras = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    packages = bento.build_options(repo_root, extra)["python"]["packages"]
    assert packages == [*extras["serve-base"], *[r for r in extras[extra] if "[" not in r]]
    names = {p.split(">")[0].split("=")[0].split(";")[0].strip() for p in packages}
    assert runtime in names and ({"onnxruntime", "onnxruntime-gpu"} - {runtime}).isdisjoint(names)
    assert not names & {"torch", "torchvision"}
