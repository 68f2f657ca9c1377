"""service.server.internals, the fence around third-party internals: the versions it was written
for, the processes it patches, and its patches put on and taken off. That the patched server
behaves is checked by real servers (tests/service/test_service_hardening.py answers 431 and
408; tests/reliability/test_faults_workers.py logs a killed worker and replaces it)."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import uvicorn.config

from service.server import connections, internals, supervisor
from service.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def shipped() -> Iterator[None]:
    """uvicorn and circus as shipped before and after the test, whatever it installs."""
    internals.uninstall()
    yield
    internals.uninstall()


def _patches(settings: Settings) -> tuple[type, list[tuple[str, str]], object]:
    return connections.protocol(settings), connections.headers(settings), supervisor.watcher_class


@pytest.mark.usefixtures("shipped")
def test_uvicorn_gets_our_protocol_and_headers_inside_the_block_only() -> None:
    settings = Settings(max_header_bytes=1000, header_timeout_s=2.5)
    with internals.installed(*_patches(settings)):  # type: ignore[arg-type]
        config = uvicorn.Config(app=lambda *_: None)
        assert issubclass(config.http, connections.GuardedProtocol)
        assert config.http.limits.max_header_bytes == 1000 and config.http.limits.header_timeout_s == 2.5
        assert ("x-content-type-options", "nosniff") in config.headers
        own = uvicorn.Config(app=lambda *_: None, http="h11", headers=[])
        assert own.http == "h11" and own.headers == []
    assert uvicorn.Config is uvicorn.config.Config


@pytest.mark.usefixtures("shipped")
def test_security_headers_can_be_turned_off() -> None:
    with internals.installed(*_patches(Settings(security_headers=False))):  # type: ignore[arg-type]
        assert uvicorn.Config(app=lambda *_: None).headers == []


@pytest.mark.usefixtures("shipped")
def test_circus_watchers_get_our_hooks_and_metrics_folder_inside_the_block_only() -> None:
    """A watcher built while installed reports exits, keeps this instance's metrics apart and
    replaces dead workers even where BentoML asks it not to (in containers)."""
    import circus.watcher

    shipped = circus.watcher.Watcher
    with internals.installed(*_patches(Settings())):  # type: ignore[arg-type]
        assert circus.watcher.Watcher is not shipped and issubclass(circus.watcher.Watcher, shipped)
        watcher = circus.watcher.Watcher("service", "true", env={"PROMETHEUS_MULTIPROC_DIR": "/shared"}, respawn=False)
        assert watcher.env["PROMETHEUS_MULTIPROC_DIR"] == supervisor.instance_metrics_dir() != "/shared"
        assert {"before_reap", "after_reap"} <= set(watcher.hooks)
        assert watcher.respawn  # containers too
    assert circus.watcher.Watcher is shipped


def test_importing_the_service_outside_bentoml_serve_patches_nothing(repo_root: Path) -> None:
    probe = (
        "import uvicorn, uvicorn.config, circus.watcher, service.service\n"
        "assert uvicorn.Config is uvicorn.config.Config, uvicorn.Config\n"
        "assert not getattr(circus.watcher.Watcher, 'fenced', False)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "serving"),
    [
        (["/app/.venv/bin/bentoml", "serve", "--timeout-graceful-shutdown", "30", "/home/bentoml/bento"], True),
        (["/repo/.venv/lib/python3.11/site-packages/bentoml/__main__.py", "serve", "."], True),  # python -m bentoml
        (["/repo/.venv/lib/python3.11/site-packages/_bentoml_impl/worker/service.py", "--fd", "3"], True),
        (["/repo/.venv/bin/bentoml", "build"], False),
        (["/repo/.venv/bin/pytest", "tests/unit"], False),
        (["-c"], False),
        ([], False),
    ],
)
def test_only_bentoml_serve_processes_are_patched(argv: list[str], serving: bool) -> None:
    assert internals.serving_process(argv) is serving


def test_the_installed_versions_are_the_tested_ones() -> None:
    """uv.lock's versions are those the fence was written and tested against: a lock that moves
    one of them moves SUPPORTED with it (after the hardening tests pass on it)."""
    assert internals.check_versions() == []


def test_a_version_outside_the_range_stops_start_up_and_an_untested_one_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tested = {name: tested for name, (_, _, tested) in internals.SUPPORTED.items()}
    with pytest.raises(RuntimeError, match=r"bentoml 1\.5\.0 .*bentoml>=1\.4,<1\.5"):
        internals.check_versions({**tested, "bentoml": "1.5.0"})
    with pytest.raises(RuntimeError, match=r"uvicorn 1\.0\.0"):
        internals.check_versions({**tested, "uvicorn": "1.0.0"})
    with caplog.at_level(logging.WARNING, logger="service"):
        assert internals.check_versions({**tested, "uvicorn": "0.56.1"}) == ["uvicorn 0.56.1 (tested on 0.55.0)"]
    assert "untested" in caplog.text


FENCED = ("_bentoml_sdk", "_bentoml_impl", "uvicorn", "circus.watcher")


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_only_the_fence_imports_library_internals(repo_root: Path) -> None:
    """BentoML's private packages, uvicorn and circus's watcher are imported by internals.py alone (the
    rest of service/ uses bentoml's public API), and only it touches a private attribute of
    prometheus_client's metrics."""
    fence = repo_root / "service" / "server" / "internals.py"
    offenders = []
    for path in sorted((repo_root / "service").rglob("*.py")):
        if path == fence:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(repo_root)}: {n}" for n in names if any(_under(n, f) for f in FENCED)]
            if isinstance(node, ast.Attribute) and node.attr in ("_upper_bounds", "_buckets", "_sum"):
                offenders.append(f"{path.relative_to(repo_root)}: .{node.attr}")
    assert offenders == []
