"""Worst-case uploads against one worker: what each costs in memory, time and health checks.

    python -m benchmarks.bench_worst_case             # about two minutes
    python -m benchmarks.bench_worst_case --env MNIST_DECODE_THREADS=1

Serves the repo with `bentoml serve` and one worker (MNIST_WORKERS=1, MNIST_TIMEOUT_S=2 unless
--env says otherwise), then sends each upload of the hardening list (docs/hardening.md), and a few that sit exactly at
the limits, one scenario at a time. Before each scenario the worker's peak-RSS mark is reset
(/proc/<pid>/clear_refs), so "peak MB" is that scenario's own high-water mark (VmHWM), while a
thread polls /livez every 50 ms: "livez worst ms" is the slowest health check meanwhile, the
event loop's stall; "CPU s after" is the worker's CPU time in the 2 s after the last answer
(work that went on past a 504); "413*" is a refusal not in our {error, accepted} JSON. The
last line is the worst peak of all against the worker's RSS at rest.
Numbers print only (Linux: it reads /proc).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image, ImageDraw

from harness.server import running_service

MB = 1024 * 1024


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _digit(size: tuple[int, int], mode: str) -> Image.Image:
    """A big, mostly blank canvas with one thick stroke: compresses to little, decodes to much."""
    img = Image.new(mode, size, "white" if mode != "1" else 1)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.line(
        [(w // 2, h // 5), (w // 2, 4 * h // 5)], fill=0 if mode == "1" else "black", width=max(1, min(w, h) // 12)
    )
    return img


def _jpeg(size: tuple[int, int], progressive: bool) -> bytes:
    buf = io.BytesIO()
    _digit(size, "L").save(buf, "JPEG", quality=80, progressive=progressive)
    return buf.getvalue()


def _pixels_json(n: int) -> bytes:
    """/predict_pixels with n images written with long floats: about 17 KB of JSON per image."""
    rng = np.random.default_rng(0)
    images = [np.round(rng.random((28, 28)), 15).tolist() for _ in range(n)]
    return json.dumps({"images": images}).encode()


def worker_pids(url: str) -> list[int]:
    """The BentoML worker processes of the server listening on url's port."""
    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serve" in cmd and "--port" in cmd and port in cmd:
            return [c.pid for c in proc.children(recursive=True) if "_bentoml_impl.worker" in " ".join(c.cmdline())]
    raise RuntimeError(f"no bentoml serve on port {port}")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Start a new high-water mark of resident memory (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class LivezProbe(threading.Thread):
    """Polls /livez and keeps the slowest answer (or a failure) since the last reset."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.worst, self.failed, self.stop = url, 0.0, 0, threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/livez").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.worst = max(self.worst, time.perf_counter() - start)
                self.failed += not ok
                time.sleep(0.05)

    def reset(self) -> None:
        self.worst, self.failed = 0.0, 0


def scenarios() -> list[tuple[str, str, Callable[[], dict], int]]:
    """(what, endpoint, request kwargs, concurrent copies)."""
    bomb_1bit = _png(_digit((6300, 6300), "1"))  # before the pixel budgets, 64 of these grew a worker to 2 GB
    rgba_big = _png(_digit((6300, 6300), "RGBA"))  # before: +1.4 GB and 20 s
    small_bomb = _png(_digit((5000, 5000), "1"))  # before: 3.8 KB, blocked /livez 1.6 s
    at_cap_rgba = _png(_digit((4000, 4000), "RGBA"))  # 16.0 MP: the per-image cap
    at_cap_1bit = _png(_digit((4000, 4000), "1"))
    jpeg_64mp = _jpeg((8000, 8000), progressive=False)  # 4 x the cap stored: decoded at 1/8
    jpeg_64mp_prog = _jpeg((8000, 8000), progressive=True)
    pixels_17mib = _pixels_json(1024)
    deep = b"[" * 100_000 + b"]" * 100_000
    noise = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), np.uint8)))
    per_body = (20 * MB - 4096) // len(noise)  # as many as fit in a 20 MiB body

    def files(data: bytes, n: int, field: str = "images") -> Callable[[], dict]:
        return lambda: {"files": [(field, (f"{i}.png", data, "image/png")) for i in range(n)]}

    def raw(data: bytes, kind: str) -> Callable[[], dict]:
        return lambda: {"content": data, "headers": {"content-type": kind}}

    return [
        (f"64 x 6300x6300 1-bit PNG ({64 * len(bomb_1bit) // 1024} KB)", "/predict_batch", files(bomb_1bit, 64), 1),
        (f"6300x6300 RGBA PNG ({len(rgba_big) // 1024} KB)", "/predict", raw(rgba_big, "image/png"), 1),
        (
            f"12 x 5000x5000 1-bit PNG ({len(small_bomb) // 1024} KB) at once",
            "/predict",
            raw(small_bomb, "image/png"),
            12,
        ),
        ("4000x4000 RGBA PNG (16 MP: the image cap)", "/predict", raw(at_cap_rgba, "image/png"), 1),
        ("4 x 4000x4000 1-bit PNG (64 MP: the request budget)", "/predict_batch", files(at_cap_1bit, 4), 1),
        ("8000x8000 baseline JPEG (64 MP stored)", "/predict", raw(jpeg_64mp, "image/jpeg"), 1),
        ("8000x8000 progressive JPEG (64 MP stored)", "/predict", raw(jpeg_64mp_prog, "image/jpeg"), 1),
        ("12 x 4000x4000 RGBA PNG at once (decode threads)", "/predict", raw(at_cap_rgba, "image/png"), 12),
        ("40 x 4000x4000 1-bit PNG at once (past the queue)", "/predict", raw(at_cap_1bit, "image/png"), 40),
        (
            f"/predict_pixels, 1024 images ({len(pixels_17mib) / MB:.0f} MiB of JSON)",
            "/predict_pixels",
            raw(pixels_17mib, "application/json"),
            1,
        ),
        ("JSON nested 100,000 deep", "/predict_pixels", raw(deep, "application/json"), 1),
        ("8 x (4 x 4000x4000 1-bit PNG) at once (timeouts)", "/predict_batch", files(at_cap_1bit, 4), 8),
        (f"10 x 20 MiB bodies at once ({per_body} noise PNGs each)", "/predict_batch", files(noise, per_body), 10),
    ]


def run(env: dict[str, str]) -> None:
    cases = scenarios()
    with running_service(env=env) as url:
        (pid,) = worker_pids(url)
        worker = psutil.Process(pid)
        rest = _status_kb(pid, "VmRSS") / 1024
        probe = LivezProbe(url)
        probe.start()
        print(f"worker {pid} at rest: {rest:.0f} MB; env {env}\n")
        print(
            f"| {'upload':62} | {'endpoint':15} | {'answers':22} | {'s':>5} | "
            f"{'peak MB':>7} | {'livez worst ms':>14} | {'CPU s after':>11} |"
        )
        print(f"| {'-' * 62} | {'-' * 15} | {'-' * 22} | {'-' * 5} | {'-' * 7} | {'-' * 14} | {'-' * 11} |")
        worst = 0.0
        with httpx.Client(base_url=url, timeout=120) as client:
            for what, path, request, copies in cases:
                time.sleep(1.0)  # let the last scenario's threads finish
                reset_peak(pid)
                probe.reset()
                start = time.perf_counter()
                with ThreadPoolExecutor(copies) as pool:
                    kwargs = [request() for _ in range(copies)]
                    answers = list(pool.map(functools.partial(_post, client, path), kwargs))
                wall = time.perf_counter() - start
                cpu = sum(worker.cpu_times()[:2])
                time.sleep(2.0)  # work past a 504 shows here, and in the peak
                after = sum(worker.cpu_times()[:2]) - cpu
                peak = _status_kb(pid, "VmHWM") / 1024
                worst = max(worst, peak)
                counts = ", ".join(f"{n} x {s}" for s, n in sorted(Counter(answers).items()))
                stall = f"{probe.worst * 1000:.0f}" + (f" ({probe.failed} failed)" if probe.failed else "")
                print(
                    f"| {what:62} | {path:15} | {counts:22} | {wall:5.1f} | {peak:7.0f} | {stall:>14} | {after:11.2f} |"
                )
            alive = client.post("/predict_pixels", json={"images": [[[0] * 28] * 28]}).status_code
        probe.stop.set()
    print(f"\nworst peak RSS {worst:.0f} MB (worker at rest {rest:.0f} MB); worker alive afterwards: {alive == 200}")


def _post(client: httpx.Client, path: str, request: dict) -> str:
    """The answer's status; '*' marks a refusal not in our JSON, 'dropped' no answer at all."""
    try:
        r = client.post(path, **request)
    except httpx.HTTPError:
        return "dropped"
    if r.status_code >= 400:
        try:
            ours = set(r.json()) == {"error", "accepted"}
        except ValueError:
            ours = False
        return f"{r.status_code}{'' if ours else '*'}"
    return str(r.status_code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="MNIST_X=value",
        help="extra settings for the service (default: one worker, 2 s timeout)",
    )
    args = parser.parse_args()
    env = {"MNIST_WORKERS": "1", "MNIST_TIMEOUT_S": "2"}  # short: the last scenarios time out
    env.update(dict(item.split("=", 1) for item in args.env))
    run(env)


if __name__ == "__main__":
    main()
