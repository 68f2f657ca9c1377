"""How fast the service answers, next to what the model and a plain endpoint can do.

    python -m benchmarks.bench_service          # or: make benchmark-service (ARGS="--users 16")

One run on this machine, all against 127.0.0.1, with locust (headless, FastHttpUser, no wait)
at a fixed concurrency:
  1. the served model in-process with onnxruntime: images/s at max_batch_size (the ceiling);
  2. `bentoml serve` (this repo's service): /predict requests/s, p50, p99; /predict_batch images/s;
     the Open Inference Protocol's infer (v2), one image and a batch per request, as
     tritonclient sends them (BYTES PNGs with the binary tensor data extension);
  3. a minimal hand-written Starlette + onnxruntime /predict doing the same decode, MNIST
     framing and predict per request (service.images.decode.decode + service.images.preprocess): the
     baseline a user would otherwise write.
Uploads are MNIST test digits as 28x28 PNGs in multipart field `image` (`images` for batches),
so the numbers measure the serving stack rather than JPEG decoding. Results go to stdout and to
BENCHMARKS.md between the bench_service markers. Benchmarks run on request, never in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import write_section
from harness.mnist import data_dir, load_mnist
from harness.server import free_port, running_server, running_service
from service.model import Classifier, resolve
from service.settings import cpu_count, get_settings

REPO = Path(__file__).resolve().parents[1]

START, END = "<!-- bench_service:start -->", "<!-- bench_service:end -->"
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"

LOCUSTFILE = """
import json, os, pathlib, random
from locust import FastHttpUser, constant, task

D = pathlib.Path(os.environ["BENCH_DIR"])
KIND = os.environ["BENCH_KIND"]
META = json.loads((D / "meta.json").read_text())[KIND]
EXTRA = META.get("headers") or [{}] * len(META["files"])
BODIES = [((D / f).read_bytes(), h) for f, h in zip(META["files"], EXTRA)]

class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self):
        body, extra = random.choice(BODIES)
        headers = {"Content-Type": META["content_type"], **extra}
        with self.client.post(META["path"], data=body, headers=headers, name=KIND,
                              catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
"""


def multipart(field: str, blobs: list[bytes]) -> bytes:
    """A multipart/form-data body with one file part per blob, all under `field`."""
    parts = [
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{i}.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + blob
        + b"\r\n"
        for i, blob in enumerate(blobs)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def v2_bytes_request(pngs: list[bytes]) -> tuple[bytes, int]:
    """An Open Inference Protocol infer body as tritonclient sends image files: BYTES [N]
    with the binary tensor data extension (each file after a 4-byte little-endian length),
    outputs in binary too; and the length of its JSON header."""
    raw = b"".join(len(p).to_bytes(4, "little") + p for p in pngs)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [len(pngs)],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + raw, len(header)


def write_payloads(folder: Path, images: np.ndarray, batch: int) -> None:
    """Request bodies on disk for the locust processes: single uploads and batches."""
    pngs = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        pngs.append(buf.getvalue())
    meta = {}
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    singles = []
    for i, png in enumerate(pngs):
        (folder / f"p{i}.bin").write_bytes(multipart("image", [png]))
        singles.append(f"p{i}.bin")
    meta["predict"] = {"path": "/predict", "files": singles, "content_type": ctype}
    batches = []
    for j in range(0, len(pngs) - batch + 1, batch):
        (folder / f"b{j}.bin").write_bytes(multipart("images", pngs[j : j + batch]))
        batches.append(f"b{j}.bin")
    meta["predict_batch"] = {"path": "/predict_batch", "files": batches, "content_type": ctype}
    for kind, n in (("v2_infer", 1), ("v2_infer_batch", batch)):
        files, headers = [], []
        for j in range(0, len(pngs) - n + 1, n):
            body, header_length = v2_bytes_request(pngs[j : j + n])
            (folder / f"{kind}{j}.bin").write_bytes(body)
            files.append(f"{kind}{j}.bin")
            headers.append({"Inference-Header-Content-Length": str(header_length)})
        meta[kind] = {
            "path": "/v2/models/mnist/infer",
            "files": files,
            "headers": headers,
            "content_type": "application/octet-stream",
        }
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "locustfile.py").write_text(LOCUSTFILE)


def run_locust(url: str, folder: Path, kind: str, users: int, seconds: int) -> dict:
    """One headless locust run at fixed concurrency; its aggregated stats."""
    env = {**os.environ, "BENCH_DIR": str(folder), "BENCH_KIND": kind}
    prefix = folder / f"{kind}-{free_port()}-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(folder / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        "5",
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
    }


def median_run(runs: list[dict]) -> dict:
    """Per-field median over interleaved rounds (failures are summed)."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
    out["failures"] = sum(r["failures"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["rounds"] = runs
    return out


def in_process(clf: Classifier, pixels: np.ndarray, batch: int, seconds: float) -> float:
    """Median images/s of the bare onnxruntime session over 1 s windows (servers idle)."""
    x = pixels[:batch]
    for _ in range(20):
        clf.probabilities(x)
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            clf.probabilities(x)
            n += len(x)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def baseline_app():  # -> Starlette
    """What a user would hand-write: Starlette, one onnxruntime session, same decode and framing.

    A uvicorn factory (one app per worker process); onnxruntime threads = cores // workers,
    as the service has them.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from service.images.decode import decode
    from service.images.preprocess import to_mnist

    s = get_settings()
    clf = Classifier(resolve(s.models_dir), "cpu", s.threads_per_worker)
    limit = s.max_image_pixels

    async def predict(request: Request) -> JSONResponse:
        form = await request.form()
        data = await form["image"].read()
        pixels = to_mnist(decode(data, max_pixels=limit, accepted=""))
        probs = clf.probabilities(pixels[None])[0]
        digit = int(probs.argmax())
        return JSONResponse(
            {
                "digit": digit,
                "confidence": float(probs[digit]),
                "probabilities": probs.round(6).tolist(),
                "model_version": clf.version,
            }
        )

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def serve_baseline(port: int) -> None:
    """Entry point of the baseline's own process: uvicorn, MNIST_WORKERS processes, no access
    log (uvicorn uses httptools and uvloop, installed with the service)."""
    import uvicorn

    uvicorn.run(
        "bench_service:baseline_app",
        factory=True,
        app_dir=str(Path(__file__).parent),
        workers=get_settings().workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@contextlib.contextmanager
def running_baseline(workers: int) -> Iterator[str]:
    """The baseline on a free port with `workers` processes; its URL, stopped afterwards."""
    port = free_port()
    env = {**os.environ, "MNIST_WORKERS": str(workers)}
    env.pop("MNIST_INTRA_OP_THREADS", None)
    cmd = [sys.executable, "-m", "benchmarks.bench_service", "--baseline-server", str(port)]
    with running_server(cmd, port, env, name="baseline server", cwd=REPO) as url:
        time.sleep(1)  # every worker up, not just the first
        yield url


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load avg {load}"


def table(r: dict) -> str:
    p, b, base = r["predict"], r["predict_batch"], r["baseline"]
    p1, base1 = r["predict_1w"], r["baseline_1w"]

    def row(what: str, m: dict, per_request: int = 1) -> str:
        return (
            f"| {what} | {m['rps']:,.0f} | {m['rps'] * per_request:,.0f} | "
            f"{m['p50_ms']:.0f} | {m['p99_ms']:.0f} | {m['failures']} |"
        )

    w, t = r["workers"], r["ort_threads"]
    lines = [
        f"Machine: {r['machine']}. Model `{r['model']}`; {r['users']} locust users (FastHttpUser, "
        f"no wait); medians of {r['rounds']} interleaved rounds of {r['seconds']} s per "
        f"contender after a {r['warmup']} s warm-up; uploads are MNIST test digits as 28x28 "
        f"PNG. Shipped defaults: {w} worker process(es) x {t} onnxruntime thread(s) (one per "
        "core); the baseline runs as many uvicorn workers with as many threads.",
        "",
        "| what | requests/s | images/s | p50 ms | p99 ms | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| in-process onnxruntime, batch {r['batch']}, {r['cores']} threads | | {r['in_process']:,.0f} | | | |",
        row(f"BentoML `/predict` (adaptive batching), {w} workers", p),
        row(f"Starlette + onnxruntime baseline `/predict`, {w} workers", base),
        row(f"BentoML `/predict_batch`, {r['batch']} images per request, {w} workers", b, r["batch"]),
        *(
            [
                row(f"BentoML v2 infer (Open Inference Protocol), 1 PNG per request, {w} workers", r["v2_infer"]),
                row(f"BentoML v2 infer, {r['batch']} PNGs per request, {w} workers", r["v2_infer_batch"], r["batch"]),
            ]
            if "v2_infer" in r
            else []
        ),
        row(f"BentoML `/predict`, 1 worker x {r['cores']} threads", p1),
        row(f"Starlette baseline `/predict`, 1 worker x {r['cores']} threads", base1),
        "",
        f"- `/predict` vs baseline: **{p['rps'] / base['rps']:.2f}x** requests/s (target >= 0.8x), "
        f"p99 {p['p99_ms']:.0f} vs {base['p99_ms']:.0f} ms (target: no worse). With one process "
        f"each: {p1['rps'] / base1['rps']:.2f}x, p99 {p1['p99_ms']:.0f} vs {base1['p99_ms']:.0f} ms.",
        f"- `/predict_batch` vs in-process: **{b['rps'] * r['batch'] / r['in_process']:.0%}** of "
        "the images/s (target >= 50%).",
        f"- Mean adaptive batch on `/predict`: {r['mean_batch']:.1f} images per onnxruntime call"
        + (f"; on v2 infer: {r['mean_batch_v2']:.1f} requests per call." if "mean_batch_v2" in r else "."),
        "",
        "Rerun: `make benchmark-service` (add `ARGS=--ablation` for the table below), or "
        "`python -m benchmarks.bench_service --users 32`. Per-stage costs and the cores each "
        "process uses under load: `python -m benchmarks.profile_service stages` and "
        "`... load predict_batch`.",
    ]
    return "\n".join(lines)


# What each overhead removal buys: /predict with one default put back at a time.
ABLATION = {
    "as shipped": {},
    "+ access log per request": {"MNIST_ACCESS_LOG": "true"},
    "+ OpenTelemetry spans": {"MNIST_TRACING": "true"},
    "+ garbage collector untuned": {"MNIST_GC_FREEZE": "false"},
    "+ spinning onnxruntime threads": {"MNIST_SPINNING": "true"},
    "+ all four (BentoML's and onnxruntime's defaults)": {
        "MNIST_ACCESS_LOG": "true",
        "MNIST_TRACING": "true",
        "MNIST_GC_FREEZE": "false",
        "MNIST_SPINNING": "true",
    },
}


def ablation(folder: Path, users: int, seconds: int, warmup: int, rounds: int) -> str:
    """/predict with each removed overhead put back, interleaved rounds, as a markdown table."""
    runs: dict[str, list[dict]] = {name: [] for name in ABLATION}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(running_service(env=env)) for name, env in ABLATION.items()}
        for url in urls.values():
            run_locust(url, folder, "predict", users, warmup)
        for r in range(rounds):
            for name, url in urls.items():
                print(f"ablation round {r + 1}/{rounds}: {name} ...", flush=True)
                runs[name].append(run_locust(url, folder, "predict", users, seconds))
    rows = ["| BentoML `/predict` | requests/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    for name, rs in runs.items():
        m = median_run(rs)
        rows.append(f"| {name} | {m['rps']:,.0f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} |")
    return "\n".join(rows)


def write_markdown(text: str, path: Path) -> None:
    """Replace our section of BENCHMARKS.md (other sections are left alone)."""
    write_section(path, START, END, f"## Serving: BentoML vs a plain endpoint\n\n{text}")


def mean_batch(url: str, method: str = "predict") -> float:
    """Requests per batched call of one API, from BentoML's adaptive batch size histogram."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_") and f'method_name="{method}"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("bentoml_service_adaptive_batch_size_sum"):
                total += value
            elif line.startswith("bentoml_service_adaptive_batch_size_count"):
                count += value
    return total / count if count else float("nan")


# contender -> (server, payload kind); "..._1w": one process with every core's threads
CONTENDERS = {
    "predict": ("service", "predict"),
    "baseline": ("baseline", "predict"),
    "predict_batch": ("service", "predict_batch"),
    "v2_infer": ("service", "v2_infer"),
    "v2_infer_batch": ("service", "v2_infer_batch"),
    "predict_1w": ("service_1w", "predict"),
    "baseline_1w": ("baseline_1w", "predict"),
}


def partial_table(r: dict, contenders: dict) -> str:
    """--only's rows: requests/s, images/s (batch payloads count every image), p50, p99."""
    lines = [
        f"Machine: {r['machine']}; {r['users']} users, medians of {r['rounds']} rounds of "
        f"{r['seconds']} s (--only: a quick check, not the full comparison)",
        "",
        "| what | requests/s | images/s | p50 ms | p99 ms | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (_, kind) in contenders.items():
        m, n = r[name], r["batch"] if kind.endswith("batch") else 1
        lines.append(
            f"| {name} | {m['rps']:,.0f} | {m['rps'] * n:,.0f} | {m['p50_ms']:.0f} | "
            f"{m['p99_ms']:.0f} | {m['failures']} |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    """This benchmark's flags, each with its default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=32, help="locust concurrency (%(default)s)")
    parser.add_argument("--seconds", type=int, default=10, help="one measured run (%(default)s s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (%(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up run (%(default)s s)")
    parser.add_argument("--images", type=int, default=1024, help="distinct uploads (%(default)s)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; keep BENCHMARKS.md")
    parser.add_argument("--ablation", action="store_true", help="also run /predict with each removed overhead put back")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=CONTENDERS,
        metavar="NAME",
        help=f"measure only these rows and print them, writing nothing (a quick check; one of {', '.join(CONTENDERS)})",
    )
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.baseline_server:
        serve_baseline(args.baseline_server)
        return

    settings = get_settings()
    images, _ = load_mnist(args.data_dir, "test")
    images = images[: args.images]
    pixels = images.astype(np.float32) / 255.0
    cores = cpu_count()
    clf = Classifier(
        resolve(settings.models_dir, settings.model_version, settings.model_path), "cpu", cores
    )  # the ceiling: one session on every core
    batch = settings.max_batch_size
    results: dict = {
        "machine": machine(),
        "model": clf.version,
        "users": args.users,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "batch": batch,
        "workers": settings.workers,
        "ort_threads": settings.threads_per_worker,
        "cores": cores,
    }
    contenders = {name: CONTENDERS[name] for name in args.only or CONTENDERS}
    runs: dict[str, list] = {name: [] for name in [*contenders, "in_process"]}
    extra = ""
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        write_payloads(folder, images, batch)
        servers = {
            "service": lambda: running_service(),
            "baseline": lambda: running_baseline(settings.workers),
            "service_1w": lambda: running_service(env={"MNIST_WORKERS": "1"}),
            "baseline_1w": lambda: running_baseline(1),
        }
        urls = {
            server: stack.enter_context(servers[server]())
            for server in dict.fromkeys(server for server, _ in contenders.values())
        }
        print("warm-up ...", flush=True)
        for server, kind in contenders.values():
            run_locust(urls[server], folder, kind, args.users, args.warmup)
        # Interleaved rounds: background load, if any, hits every contender alike.
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds} ...", flush=True)
            for name, (server, kind) in contenders.items():
                runs[name].append(run_locust(urls[server], folder, kind, args.users, args.seconds))
            if not args.only:
                runs["in_process"].append(in_process(clf, pixels, batch, args.seconds / 2))
        for name in contenders:
            results[name] = median_run(runs[name])
        if args.only:
            print(partial_table(results, contenders))
            return
        results["mean_batch"] = mean_batch(urls["service"])
        results["mean_batch_v2"] = mean_batch(urls["service"], "v2_infer")
        results["in_process"] = statistics.median(runs["in_process"])
        if args.ablation:
            extra = ablation(folder, args.users, args.seconds, args.warmup, args.rounds)
    text = table(results)
    if extra:
        text += (
            "\n\nWhere BentoML's overhead went (`--ablation`: the same /predict load on servers "
            "that each put one removed default back, interleaved rounds, medians; the service "
            "ships with all four removed):\n\n" + extra
        )
    print(text)
    (REPO / "results").mkdir(exist_ok=True)
    (REPO / "results" / "bench_service.json").write_text(json.dumps(results, indent=2))
    if not args.no_write:
        write_markdown(text, REPO / "BENCHMARKS.md")
        print(f"wrote BENCHMARKS.md ({START}) and results/bench_service.json")


if __name__ == "__main__":
    main()
