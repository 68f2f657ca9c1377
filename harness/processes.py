"""The processes behind a local `bentoml serve`: its arbiter and its workers, found by port."""

from __future__ import annotations

import time
from collections.abc import Set as AbstractSet
from urllib.parse import urlsplit

import psutil

WORKER_MODULE = "_bentoml_impl.worker.service"  # what BentoML 1.4 runs in each worker


def _is_worker(proc: psutil.Process) -> bool:
    try:
        return WORKER_MODULE in proc.cmdline()
    except psutil.Error:
        return False


def arbiter(url: str) -> psutil.Process:
    """The `bentoml serve` process (circus's arbiter) listening at `url` on this host."""
    port = urlsplit(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            # The arbiter and its workers share the listening socket; psutil names one of them.
            proc = psutil.Process(conn.pid)
            return proc.parent() if _is_worker(proc) else proc
    raise LookupError(f"no process of ours listens on port {port}")


def workers(server: psutil.Process) -> list[psutil.Process]:
    """The arbiter's live worker processes, oldest first."""
    found = [p for p in server.children() if _is_worker(p) and p.status() != psutil.STATUS_ZOMBIE]
    return sorted(found, key=lambda p: p.create_time())


def wait_for_workers(
    server: psutil.Process, count: int, exclude: AbstractSet[int] = frozenset(), timeout_s: float = 120.0
) -> list[psutil.Process]:
    """Poll until `count` workers run whose pids are not in `exclude` (e.g. a replacement)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [p for p in workers(server) if p.pid not in exclude]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found)} of {count} new workers after {timeout_s:.0f} s")
        time.sleep(0.1)


def client_connections(proc: psutil.Process, url: str) -> int:
    """Established connections of clients to `url` that this worker holds."""
    port = urlsplit(url).port
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
