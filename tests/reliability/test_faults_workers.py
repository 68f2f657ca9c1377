"""Worker faults under load: kill -9 of one worker, and SIGTERM of the whole server.

Each test starts its own `bentoml serve` (two workers) on a free port and finds its processes
by that port, so other servers on the host do not matter. Numbers are printed (-s); the only
time bounds asserted are the hardening targets (docs/hardening.md), with margin.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness import processes
from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.server]

USERS = 8  # client threads, one kept-alive connection each
RECOVERY_S = 10.0  # a replacement worker takes traffic within 10 s (of being up)
READY = "Service mnist initialized"  # BentoML's line when a worker has built the service


def _digit() -> bytes:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255  # a "1"
    return png_bytes(pixels)


class Load:
    """USERS threads posting /predict back to back until stopped; (time, ok) per request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.results: list[tuple[float, bool]] = []
        self.threads = [threading.Thread(target=self._user, daemon=True) for _ in range(USERS)]

    def _user(self) -> None:
        body, headers = _digit(), {"content-type": "image/png"}
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stop.is_set():
                try:
                    ok = client.post("/predict", content=body, headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results.append((time.monotonic(), ok))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def rate(self, start: float, end: float) -> float:
        """Successful requests per second in [start, end)."""
        return sum(1 for t, ok in self.results if ok and start <= t < end) / (end - start)


def test_kill_9_of_a_worker_under_load(tmp_path: Path) -> None:
    """Only the killed worker's requests in flight fail, the death is logged, and its
    replacement takes traffic from clients that were already connected."""
    log = tmp_path / "serve.log"
    # As in BentoML's image, where BentoML itself would not replace a dead worker.
    env = {"MNIST_WORKERS": "2", "BENTOML_CONTAINERIZED": "true"}
    with running_service(env=env, log_path=log) as url:
        server = processes.arbiter(url)
        first = processes.wait_for_workers(server, 2)
        with Load(url) as load:
            time.sleep(4.0)
            victim = first[0]
            t_kill = time.monotonic()
            os.kill(victim.pid, signal.SIGKILL)
            (replacement,) = processes.wait_for_workers(server, 1, exclude={p.pid for p in first})
            t_spawned = time.monotonic()
            t_ready = t_traffic = None
            while time.monotonic() < t_kill + 60 and t_traffic is None:
                if t_ready is None and log.read_text(errors="replace").count(READY) > 2:
                    t_ready = time.monotonic()  # the replacement loaded its model
                if processes.client_connections(replacement, url) > 0:
                    t_traffic = time.monotonic()
                time.sleep(0.1)
            t_ready = t_ready or t_traffic
            time.sleep(4.0)
            t_end = time.monotonic()
        failures = [t for t, ok in load.results if not ok]
        before = load.rate(t_kill - 3.5, t_kill)
        after = load.rate(t_end - 3.5, t_end)
        print(
            f"\nkill -9 of worker pid {victim.pid}: {len(failures)} failed of {len(load.results)}; "
            f"replacement pid {replacement.pid} spawned after {t_spawned - t_kill:.1f} s, "
            f"ready after {(t_ready or t_kill) - t_kill:.1f} s, holds client connections "
            f"{('after %.1f s' % (t_traffic - t_kill)) if t_traffic else 'never'}; "
            f"{before:.0f} req/s before, {after:.0f} req/s at the end"
        )
        text = log.read_text(errors="replace")
        assert f"(pid {victim.pid}) died: SIGKILL" in text, text[-3000:]
        assert len(failures) <= USERS, "more requests failed than were in flight on the worker"
        assert all(t_kill <= t < t_kill + 5 for t in failures), "requests failed long after the kill"
        assert t_traffic is not None, "the replacement worker never got a client connection"
        assert t_ready is not None and t_traffic - t_ready < RECOVERY_S


def _batch_request(url: str, blob: bytes, n: int, barrier: threading.Barrier) -> tuple[int, float]:
    files = [("images", (f"{i}.png", blob, "image/png")) for i in range(n)]
    with httpx.Client(base_url=url, timeout=120.0) as client:
        barrier.wait()
        r = client.post("/predict_batch", files=files)
        return r.status_code, time.monotonic()


def test_sigterm_completes_every_request_in_flight(tmp_path: Path) -> None:
    """SIGTERM to `bentoml serve` with requests accepted and in flight: all of them answer 200
    and the server then exits."""
    n_requests, n_images = 24, 1024
    blob = _digit()
    with running_service(env={"MNIST_WORKERS": "2"}, log_path=tmp_path / "serve.log") as url:
        server = processes.arbiter(url)
        workers = processes.wait_for_workers(server, 2)
        barrier = threading.Barrier(n_requests + 1)
        with ThreadPoolExecutor(n_requests) as pool:
            futures = [pool.submit(_batch_request, url, blob, n_images, barrier) for _ in range(n_requests)]
            barrier.wait()
            deadline = time.monotonic() + 30
            # every request accepted: held by a worker now, or already answered (a fast one can
            # finish before the last one is accepted, so all 24 are not always held at once)
            while (
                sum(f.done() for f in futures) + sum(processes.client_connections(w, url) for w in workers) < n_requests
            ):
                assert time.monotonic() < deadline, "requests were not all accepted"
                time.sleep(0.01)
            t_term = time.monotonic()
            server.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        exit_code = server.wait(timeout=60)
        t_exit = time.monotonic()
    statuses = [status for status, _ in answers]
    late = sum(1 for _, t in answers if t > t_term)
    print(
        f"\nSIGTERM with {n_requests} requests of {n_images} images accepted: statuses "
        f"{sorted(set(statuses))}, {late} answered after the signal, server exited "
        f"{t_exit - t_term:.1f} s after it (code {exit_code})"
    )
    assert statuses == [200] * n_requests
    assert late > 0, "nothing was still in flight at SIGTERM: the test proved nothing"
