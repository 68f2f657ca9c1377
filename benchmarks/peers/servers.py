"""Peers as running servers: started on a free 127.0.0.1 port in a temp folder of their own, checked,
paused while others are measured, and stopped with every process they made.

A server's processes are those with its tag in their environment (and their children): that is
how they are paused (SIGSTOP, so an idle server's background threads take no CPU from the one
measured), how their CPU time is read, and how what outlives the server's process group is reaped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.peers.registry import PEERS, PEERS_PYTHON, PROJECT, Peer, digits, request
from harness.server import free_port, running_server, running_service

TAG = "BENCH_PEERS_TAG"
PROBE = 64  # test digits each server must classify as in-process onnxruntime does


@dataclass
class Server:
    """A started server: where it answers, and its processes (all that carry its tag)."""

    name: str  # unique in a run: the peer's key, or `<key>:<n>` for the n-th setting in a sweep
    key: str  # the peer's key: its request bodies are the meta.json kinds `<key>.predict`, `<key>.batch`
    label: str
    settings: str
    peer: Peer
    url: str
    tag: str

    def processes(self) -> list[psutil.Process]:
        return tagged(self.tag)

    def signal(self, sig: signal.Signals) -> None:
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def cpu_s(self) -> float:
        """CPU seconds its live processes have used (user + system)."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total


def tagged(tag: str) -> list[psutil.Process]:
    """Our processes with `tag` in their environment, and their children (Ray starts agents with
    an environment of their own); never anyone else's."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get(TAG) == tag:
                found[proc.pid] = proc
    for proc in list(found.values()):
        with contextlib.suppress(psutil.Error):
            found.update((child.pid, child) for child in proc.children(recursive=True))
    return list(found.values())


def reap(tag: str) -> None:
    """Kill what outlived its process group (Ray's workers lead groups of their own)."""
    procs = tagged(tag)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


@contextlib.contextmanager
def started(
    name: str, key: str, settings: str, model: Path, output: str, logs: Path, tries: int = 3
) -> Iterator[Server]:
    """Start one server (`key` "project": this project) with `settings`, up to `tries` times
    (PyTriton's helper sometimes misses its start-up wait on a busy machine); yield it running,
    and always stop it and every process it made."""
    peer = PEERS.get(key, PROJECT)
    tag = f"{uuid.uuid4().hex[:12]}-{name}"
    log = logs / f"{name.replace(':', '-')}.log"
    for attempt in range(1, tries + 1):
        with contextlib.ExitStack() as stack:
            # Its own temp folder (TorchServe's model store and sockets, PyTriton's, Ray's), short:
            # Ray and PyTriton put Unix sockets there, whose paths must stay under 108 bytes.
            home = tempfile.mkdtemp(prefix=f"bp-{key}-")
            stack.callback(shutil.rmtree, home, ignore_errors=True)
            stack.callback(reap, tag)
            env = {**os.environ, TAG: tag, "TMPDIR": home, "PEER_OUTPUT": output, "RAY_USAGE_STATS_ENABLED": "0"}
            env.pop("RAY_ADDRESS", None)  # Ray: never join a cluster already running on the host
            try:
                if peer is PROJECT:
                    url = stack.enter_context(running_service(env={TAG: tag}, log_path=log, ready_timeout_s=300))
                else:
                    port = free_port()
                    flags = peer.variants[settings]
                    cmd = [str(PEERS_PYTHON), "-m", f"benchmarks.peers.{peer.module}", "--port", str(port)]
                    cmd += ["--model", str(model), *flags]
                    url = stack.enter_context(
                        running_server(
                            cmd, port, env, name=name, log_path=log, ready_timeout_s=300, ready_path=peer.ready
                        )
                    )
            except (RuntimeError, TimeoutError) as exc:
                if attempt == tries:
                    raise
                print(f"  {name} did not start (try {attempt}/{tries}): {str(exc).splitlines()[0]}", flush=True)
                continue
            server = Server(name, key, peer.label, settings, peer, url, tag)
            stack.callback(server.resume)  # a stopped process cannot handle SIGTERM
            yield server
            return


def probe(server: Server, pngs: list[bytes], expected: list[int]) -> None:
    """The server answers the first digits singly and all `PROBE` as one batch, as onnxruntime does."""
    got: list[int] = []
    for i in range(4):
        got += post(server, server.peer.predict, *request(server.peer.protocol, [pngs[i]], single=True))
    got += post(server, server.peer.batch, *request(server.peer.protocol, pngs[:PROBE], single=False))
    want = expected[:4] + expected[:PROBE]
    if got != want:
        wrong = sum(a != b for a, b in zip(got, want, strict=False)) + abs(len(got) - len(want))
        raise AssertionError(
            f"{server.name} answered {wrong} of {len(want)} probe digits unlike onnxruntime: {got[:8]}"
        )


def post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> list[int]:
    """One request; the digits answered."""
    req = urllib.request.Request(server.url + path, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return digits(server.peer.protocol, resp.read(), dict(resp.headers))


def start_all(stack: contextlib.ExitStack, wanted: list[tuple[str, str, str]], model: Path, output: str, logs: Path,
              pngs: list[bytes], expected: list[int], failed: dict[str, str]) -> list[Server]:  # fmt: skip
    """Start each (name, key, settings) in turn, check its answers and pause it, all stopped when
    `stack` closes; one that does not start or answers wrongly is left out, the reason in `failed`."""
    servers = []
    for name, key, settings in wanted:
        t0 = time.monotonic()
        print(f"starting {name} ({settings or 'as shipped'}) ...", flush=True)
        try:
            server = stack.enter_context(started(name, key, settings, model, output, logs))
            probe(server, pngs, expected)
        except (RuntimeError, TimeoutError, AssertionError, OSError) as exc:
            failed[name] = str(exc).splitlines()[0][:300]
            log = logs / f"{name.replace(':', '-')}.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            print(f"  {name} left out: {failed[name]}", *(f"    | {line}" for line in tail), sep="\n", flush=True)
            continue
        server.pause()
        print(
            f"  ready in {time.monotonic() - t0:.0f} s at {server.url}, {len(server.processes())} processes", flush=True
        )
        servers.append(server)
    return servers
