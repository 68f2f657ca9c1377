"""What the serving half may depend on, and what its bento packs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from contract import Served, write_served
from harness.tiny_model import write_model_dir
from service.model import declared_models

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


# service/ read like a request's path, bottom to top: a module imports its own package and
# lower layers only (siblings of one layer never import each other), so nothing imports upward
# and there are no cycles. A new module goes in the package that says its job.
LAYERS = {
    "service.settings": 0,  # the one settings class
    "service.errors": 0,  # the one error shape
    "service.images": 1,  # bytes -> decoded image -> 28x28 frame
    "service.model": 1,  # the ONNX model: found, checked, run
    "service.answers": 1,  # the Prediction shape and its JSON
    "service.server": 1,  # server plumbing: connections, workers, memory, traffic, security, metrics
    "service.transport": 2,  # HTTP in and out: body, limits, multipart, pixels JSON, IO specs
    "service.v2": 3,  # the Open Inference Protocol
    "service.pages": 4,  # GET /model and /ui
    "service.openapi": 4,  # /docs.json
    "service.service": 5,  # the BentoML service: the endpoints
}


def _module_name(repo_root: Path, path: Path) -> str:
    parts = path.relative_to(repo_root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _service_imports(repo_root: Path, path: Path) -> set[str]:
    """The service modules a file imports (`from service.v2 import routes` is service.v2.routes)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "service"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "service":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (repo_root / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    repo_root / Path(*sub.split(".")) / "__init__.py"
                ).is_file()
                found.add(sub if is_module else node.module)
    return found


def _layer(module: str) -> str:
    keys = [key for key in LAYERS if module == key or module.startswith(key + ".")]
    assert keys, f"{module} is in no layer of LAYERS: add its package there"
    return max(keys, key=len)


def _service_graph(repo_root: Path) -> dict[str, set[str]]:
    files = sorted((repo_root / "service").rglob("*.py"))
    return {_module_name(repo_root, f): _service_imports(repo_root, f) for f in files}


def test_service_imports_run_down_its_layers(repo_root: Path) -> None:
    graph = _service_graph(repo_root)
    assert len(graph) > 20
    upward = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module != "service"
        for target in targets
        if _layer(target) != _layer(module) and LAYERS[_layer(target)] >= LAYERS[_layer(module)]
    }
    assert not upward


def test_service_has_no_import_cycles(repo_root: Path) -> None:
    graph = _service_graph(repo_root)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in graph.get(module, ()):
            visit(target, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


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


def _bentofile(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_bento_packs_the_code_and_served_json_but_no_model_folder(repo_root: Path) -> None:
    """Models reach a bento through the model store (the service declares them), never as files."""
    options = _bentofile(repo_root / "bentofile.yaml")
    assert options["service"] == "service.service:MnistService"
    assert options["include"] == ["service/**/*.py", "service/ui/**", "contract/**/*.py", "models/served.json"]
    assert options["python"] == {"requirements_txt": "deploy/requirements/serve.txt", "lock_packages": False}


def test_gpu_bentofile_differs_only_in_its_packages(repo_root: Path) -> None:
    cpu, gpu = _bentofile(repo_root / "bentofile.yaml"), _bentofile(repo_root / "deploy" / "bentofile-gpu.yaml")
    assert gpu["python"].pop("requirements_txt") == "deploy/requirements/gpu.txt"
    cpu["python"].pop("requirements_txt")
    assert gpu == cpu


def _pins(path: Path) -> dict[str, str]:
    """name -> version of an exported requirements file (`name==version ; marker`)."""
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[name.lower()] = version
    return pins


def _locked(repo_root: Path) -> dict[str, set[str]]:
    """name -> every version uv.lock holds for it (one per resolution it differs in)."""
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((repo_root / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package.get("version", ""))
    return locked


@pytest.mark.parametrize(("extra", "runtime"), [("serve", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_bento_installs_the_locked_runtime_and_no_torch(repo_root: Path, extra: str, runtime: str) -> None:
    """The bento's packages are uv.lock's versions (`make lock-check` checks the whole export)."""
    pins = _pins(repo_root / "deploy" / "requirements" / f"{extra}.txt")
    locked = _locked(repo_root)
    assert {name for name, version in pins.items() if version not in locked.get(name, set())} == set()
    assert runtime in pins and ({"onnxruntime", "onnxruntime-gpu"} - {runtime}).isdisjoint(pins)
    assert {"bentoml", "numpy", "pillow", "pydantic"} <= set(pins)
    assert not set(pins) & {"torch", "torchvision", "onnx"}


def test_the_service_declares_the_served_version_first(tmp_path: Path) -> None:
    """`bentoml build` packs what the service declares: served.json's served version, then the
    earlier versions that are intact (a broken or absent one is left out, as v2 leaves it out)."""
    older, served = write_model_dir(tmp_path, serve=False, seed=1), write_model_dir(tmp_path, serve=False, seed=2)
    broken = write_model_dir(tmp_path, serve=False, seed=3)
    (tmp_path / broken / "model.onnx").write_bytes(b"corrupt")
    write_served(tmp_path, Served(served=served, history=[older, broken, "lenet5-12345678"]))
    declared = declared_models(tmp_path, served)
    assert [str(m.tag) for m in declared] == [f"mnist:{served}", f"mnist:{older}"]
    assert declared[0].folder == tmp_path / served
