"""Start `bentoml serve` on a free 127.0.0.1 port for tests, load tests and benchmarks."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def free_port() -> int:
    """Ask the kernel for a port nobody listens on (tiny race, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_ready(url: str, path: str = "/readyz") -> bool:
    """True once `path` answers 200 (BentoML's /readyz: model loaded, checked and warmed up)."""
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _tail(path: Path, n_chars: int = 4000) -> str:
    """The end of the server log, to say why a start failed."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-n_chars:]


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """Stop the server and every worker it forked (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def running_service(
    env: dict[str, str] | None = None,
    target: str | None = None,
    python_bin: str | None = None,
    *,
    cwd: str | Path | None = None,
    ready_timeout_s: float = 180.0,
    log_path: str | Path | None = None,
) -> Iterator[str]:
    """Serve `target` on a free port, yield its base URL, and always stop it.

    env: extra environment variables (e.g. MNIST_*, BENTOML_HOME) on top of this process's.
    target: what `bentoml serve` takes: a bento tag, a bento folder or `module:Class`;
        None serves the repo root (its bentofile.yaml names the service).
    python_bin: the interpreter whose bentoml runs it (e.g. .venv-serve/bin/python).
    """
    port = free_port()
    python = python_bin or sys.executable
    cmd = [python, "-m", "bentoml", "serve", target or "."]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", **(env or {})}
    with running_server(
        cmd, port, full_env, name="bentoml serve", cwd=cwd, ready_timeout_s=ready_timeout_s, log_path=log_path
    ) as url:
        yield url


@contextlib.contextmanager
def running_server(
    cmd: list[str],
    port: int,
    env: dict[str, str],
    *,
    name: str,
    cwd: str | Path | None = None,
    ready_timeout_s: float = 180.0,
    log_path: str | Path | None = None,
    ready_path: str = "/readyz",
) -> Iterator[str]:
    """Run `cmd` (a server on 127.0.0.1:`port`) in its own process group with exactly `env` (`name`
    in errors); yield its URL once `ready_path` answers 200, and always stop it and its children."""
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        if log_path is None:
            log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="server-"))
            log_path = Path(log_dir) / "serve.log"
        log_path = Path(log_path)
        log_file = stack.enter_context(log_path.open("wb"))
        logger.info("starting %s (log: %s)", " ".join(cmd), log_path)
        proc = subprocess.Popen(
            cmd,
            cwd=str(cwd or REPO),
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: _stop reaches the workers too
        )
        try:
            deadline = time.monotonic() + ready_timeout_s
            while not _is_ready(url, ready_path):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {proc.returncode} before it was ready:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {ready_timeout_s:.0f}s:\n{_tail(log_path)}")
                time.sleep(0.25)
            logger.info("server ready at %s", url)
            yield url
        finally:
            _stop(proc)
