"""Slow and idle clients: a flood of connections that never finish their headers, or send
huge ones, must not take the service down.

The server runs with a 1024 open-file limit, as on many hosts; each test starts its own on a
free port. Numbers are printed (-s).
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness import processes
from harness.images import png_bytes
from harness.server import free_port, running_server

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.server]

HEADER_TIMEOUT_S = 2.0
IDLE = 4000  # more than the two workers' 1024 open files and the 2048 backlog together
SLOW = 200  # connections sending one header byte a second


@contextlib.contextmanager
def serve_with_file_limit(tmp_path: Path, nofile: int = 1024, **env: str) -> Iterator[str]:
    """`bentoml serve` (two workers) whose processes may open `nofile` files."""
    port = free_port()
    cmd = [
        "sh",
        "-c",
        f'ulimit -n {nofile} && exec "$@"',
        "sh",
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        ".",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    full_env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "True",
        "MNIST_WORKERS": "2",
        "MNIST_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        **env,
    }
    with running_server(cmd, port, full_env, name="bentoml serve", log_path=tmp_path / "serve.log") as url:
        yield url


def _our_file_budget(wanted: int) -> int:
    """Sockets this test process may open: its soft open-file limit, raised toward `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + 200:
        soft = wanted + 200 if hard == resource.RLIM_INFINITY else min(wanted + 200, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return wanted if soft == resource.RLIM_INFINITY else min(wanted, soft - 200)


def _connect(port: int) -> socket.socket | None:
    sock = socket.socket()
    sock.settimeout(2.0)
    try:
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed it (EOF or reset), after whatever it answered."""
    try:
        while True:
            if not sock.recv(65536):  # non-blocking: BlockingIOError while still open
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _service_answers(url: str) -> tuple[int, int, float]:
    """/readyz and /predict status from a fresh client, and the seconds both took."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    start = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            ready = client.get("/readyz").status_code
            predict = client.post(
                "/predict", content=png_bytes(pixels), headers={"content-type": "image/png"}
            ).status_code
    except httpx.HTTPError:
        ready = predict = 0
    return ready, predict, time.monotonic() - start


def test_idle_and_slow_header_flood(tmp_path: Path) -> None:
    """4,000 idle connections and 200 sending a header byte a second, against two workers that
    may open 1,024 files each: /readyz and /predict keep answering (they failed before), and
    the server closes the flood once the header timeout passes (slow senders get a 408)."""
    n_idle = _our_file_budget(IDLE + SLOW) - SLOW
    with serve_with_file_limit(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        idle = [s for s in (_connect(port) for _ in range(n_idle)) if s]
        during = _service_answers(url)
        slow = [s for s in (_connect(port) for _ in range(SLOW)) if s]
        for sock in slow:
            sock.send(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 15
        open_idle, open_slow = idle, slow
        while time.monotonic() < deadline and (open_idle or open_slow):
            for sock in open_slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            open_idle = [s for s in open_idle if not _closed_by_server(s)]
            open_slow = [s for s in open_slow if not _closed_by_server(s)]
            time.sleep(1.0)
        after = _service_answers(url)
        log = (tmp_path / "serve.log").read_text(errors="replace")
        for sock in idle + slow:
            sock.close()
    print(
        f"\n{len(idle)} idle and {len(slow)} slow-header connections opened; during the flood "
        f"/readyz {during[0]}, /predict {during[1]} in {during[2]:.2f} s; "
        f"{len(idle) - len(open_idle)} idle and {len(slow) - len(open_slow)} slow ones closed by "
        f"the server within {HEADER_TIMEOUT_S + 15:.0f} s; afterwards /readyz {after[0]}, "
        f"/predict {after[1]}"
    )
    assert during[:2] == (200, 200), log[-3000:]
    assert after[:2] == (200, 200), log[-3000:]
    assert not open_idle and not open_slow, f"{len(open_idle)} idle, {len(open_slow)} slow still open"
    assert "Too many open files" not in log


def _rss_mib(url: str) -> float:
    return sum(w.memory_info().rss for w in processes.workers(processes.arbiter(url))) / 2**20


def _send_huge_header(port: int, total: int, result: list[bytes]) -> None:
    """Send a header of `total` bytes (never finished); keep what the server answered."""
    chunk = b"a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(total // len(chunk)):
                sock.sendall(chunk)
            time.sleep(1.0)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sock.settimeout(5)
            result.append(sock.recv(1024))


def test_huge_headers_are_refused_without_growing_memory(tmp_path: Path) -> None:
    """Four clients each sending an unfinished 64 MiB header: each gets a 431 early, and the
    workers' memory stays flat."""
    total = 64 << 20
    with serve_with_file_limit(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        base = _rss_mib(url)
        answers: list[bytes] = []
        senders = [threading.Thread(target=_send_huge_header, args=(port, total, answers)) for _ in range(4)]
        for t in senders:
            t.start()
        peak = base
        while any(t.is_alive() for t in senders):
            peak = max(peak, _rss_mib(url))
            time.sleep(0.1)
        ready, predict, _ = _service_answers(url)
    print(
        f"\n4 unfinished {total >> 20} MiB headers: workers' RSS {base:.0f} MiB before, peak "
        f"{peak:.0f} MiB (+{peak - base:.0f}); answers {[a.split(b' ', 2)[1] for a in answers if a]}"
    )
    assert ready == predict == 200
    assert peak - base < 64, f"workers grew by {peak - base:.0f} MiB"
    assert answers and all(a.startswith(b"HTTP/1.1 431") for a in answers), answers
