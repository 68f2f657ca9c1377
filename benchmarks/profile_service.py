"""Where a request's time goes: per-stage costs in-process, and CPU per process under load.

    python -m benchmarks.profile_service stages                 # microseconds per image, by stage
    python -m benchmarks.profile_service load predict_batch     # cores used by workers and locust
    python -m benchmarks.profile_service load predict --env MNIST_WORKERS=1 --flamegraph
    python -m benchmarks.profile_service load predict --baseline   # the Starlette baseline

`stages` times each step a /predict_batch of 64 MNIST test digits as 28x28 PNGs goes through,
on one core: multipart parsing, decode (libspng; Pillow's cost on the same PNGs is printed
beside it), MNIST framing, onnxruntime (one thread), the JSON answer and the drift metrics.
`load` serves the repo with `bentoml serve` (MNIST_* from --env), or with --baseline
bench_service's hand-written Starlette endpoint, runs locust at fixed concurrency against one
endpoint, and prints requests/s, images/s, the cores each process used and the server's CPU
time per request; --flamegraph also records the first worker with py-spy into
results/profile-<endpoint>.svg. Numbers print only; nothing is written to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from benchmarks.bench_service import (
    BOUNDARY,
    multipart,
    run_locust,
    running_baseline,
    write_payloads,
)
from harness.mnist import data_dir, load_mnist
from harness.server import running_service

REPO = Path(__file__).resolve().parents[1]


def stages(images: np.ndarray) -> None:
    """Microseconds per image of each stage of a 64-image /predict_batch, best of 5."""
    from service.answers import predictions_json
    from service.images.decode import decode, open_image
    from service.images.preprocess import to_mnist_many
    from service.model import Classifier, resolve
    from service.server import metrics
    from service.settings import get_settings
    from service.transport.multipart import multipart_files

    settings = get_settings()
    pngs = []
    for img in images[:64]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        pngs.append(buf.getvalue())
    body = multipart("images", pngs)
    limit = settings.max_image_pixels
    decoded = [decode(p, max_pixels=limit, accepted="") for p in pngs]
    pixels = to_mnist_many(decoded)
    clf = Classifier(resolve(settings.models_dir), "cpu", 1)
    probs = clf.probabilities(pixels)
    steps = {
        "multipart parse": lambda: multipart_files(
            body, f"multipart/form-data; boundary={BOUNDARY}", "images", 1024, ""
        ),
        "decode (libspng)": lambda: [decode(p, max_pixels=limit, accepted="") for p in pngs],
        "MNIST framing (to_mnist_many)": lambda: to_mnist_many(decoded),
        "onnxruntime, 1 thread": lambda: clf.probabilities(pixels),
        "JSON answer (predictions_json)": lambda: predictions_json(probs, clf.labels, clf.version),
        "drift metrics (metrics.record)": lambda: metrics.record(probs, settings.low_confidence),
    }
    aside = {  # not on the path of these uploads: what the fast decode saves
        "(Pillow decode of the same PNGs)": lambda: [open_image(p, max_pixels=limit, accepted="") for p in pngs],
    }

    def per_image(step) -> float:
        step()
        return min(timeit.repeat(step, number=20, repeat=5)) / 20 / len(pngs) * 1e6

    total = 0.0
    print(f"{'stage of a 64-image /predict_batch':34} us/image")
    for name, step in steps.items():
        best = per_image(step)
        total += best
        print(f"{name:34} {best:8.1f}")
    print(f"{'sum':34} {total:8.1f}")
    for name, step in aside.items():
        print(f"{name:34} {per_image(step):8.1f}")


# Where a worker's samples go: each sample counts for the innermost frame whose file is one of
# these (library frames such as numpy or prometheus_client count for whoever called them).
LAYERS = (
    ("onnxruntime (the model)", ("onnxruntime/",)),
    ("ours: reading the upload (body, multipart, decode, framing)", (
        "service/transport/", "service/images/frames.py", "service/images/decode.py", "service/images/preprocess.py",
        "contract/photo.py", "contract/framing.py",
    )),
    ("ours: answer and drift metrics", ("service/answers.py", "service/server/metrics.py", "service/service.py")),
    ("ours: guards (deadline, connections, security)", (
        "service/server/traffic.py", "service/server/connections.py", "service/server/security.py",
    )),
    ("BentoML's request layers and batching", ("_bentoml_impl/", "bentoml/_internal/", "simple_di/", "opentelemetry/")),
    ("HTTP server and event loop (uvicorn, Starlette, asyncio)", ("uvicorn/", "starlette/", "asyncio/", "anyio/")),
)  # fmt: skip


def layer_shares(collapsed: Path) -> dict[str, float]:
    """py-spy's collapsed stacks -> share of samples per layer of the request path (LAYERS)."""
    counts = dict.fromkeys([name for name, _ in LAYERS] + ["other"], 0)
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        layer = next(
            (name for frame in reversed(frames) for name, files in LAYERS if any(f in frame for f in files)), "other"
        )
        counts[layer] += int(n)
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command line, user + system CPU seconds) for every process psutil may read."""
    out = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (" ".join(proc.info["cmdline"] or []), times.user + times.system)
    return out


def _role(cmd: str) -> str | None:
    if "_bentoml_impl.worker" in cmd:
        return "BentoML worker"
    if "locust" in cmd:
        return "locust (load generator)"
    if "bentoml serve" in cmd:
        return "BentoML arbiter"
    if "--baseline-server" in cmd:
        return "baseline's uvicorn"
    if "multiprocessing.spawn" in cmd:
        return "baseline's uvicorn worker"
    return None


def load(
    images: np.ndarray,
    endpoint: str,
    env: dict[str, str],
    users: int,
    seconds: int,
    flamegraph: bool,
    baseline: bool = False,
    collapsed: bool = False,
) -> None:
    """Serve, load one endpoint, and report throughput and each process's cores (and the
    server's CPU time per request: its cores over its requests/s)."""
    if baseline:
        from service.settings import get_settings

        server = running_baseline(get_settings().workers)
    else:
        server = running_service(env=env)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp, server as url:
        folder = Path(tmp)
        write_payloads(folder, images, 64)
        run_locust(url, folder, endpoint, users, 3)  # warm-up
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(run_locust(url, folder, endpoint, users, seconds)))
        runner.start()
        time.sleep(3)  # past locust's ramp-up
        window = max(1, seconds - 6)
        spy = None
        if flamegraph:
            workers = [pid for pid, (cmd, _) in _cpu_seconds().items() if _role(cmd) == "BentoML worker"]
            out = REPO / "results" / f"profile-{endpoint}.{'txt' if collapsed else 'svg'}"
            out.parent.mkdir(exist_ok=True)
            py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
            spy = subprocess.Popen(
                [py_spy, "record", "-p", str(workers[0]), "-d", str(window), "-o", str(out), "--nonblocking"]
                + (["--format", "raw"] if collapsed else []),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        before, t0 = _cpu_seconds(), time.monotonic()
        time.sleep(window)
        after, elapsed = _cpu_seconds(), time.monotonic() - t0
        runner.join()
        if spy is not None:
            log, _ = spy.communicate()
            if spy.returncode == 0:
                print(f"flame graph of one worker: {out}")
                if collapsed:
                    for name, share in layer_shares(out).items():
                        print(f"  {100 * share:5.1f}%  {name}")
            else:
                print(f"py-spy failed ({spy.returncode}): {log.strip()[-500:]}")
    per_request = 64 if endpoint == "predict_batch" else 1
    print(
        f"{endpoint}: {result['rps']:,.0f} requests/s, {result['rps'] * per_request:,.0f} "
        f"images/s, p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
        f"{result['failures']} failures ({users} users, env {env or 'defaults'})"
    )
    total = served = 0.0
    for pid, (cmd, seconds) in sorted(after.items()):
        role = _role(cmd)
        if role and pid in before:
            cores = (seconds - before[pid][1]) / elapsed
            total += cores
            served += cores if not role.startswith("locust") else 0.0
            print(f"  {cores:5.2f} cores  {role} (pid {pid})")
    print(
        f"  {total:5.2f} cores in all, of {os.cpu_count()}; the server's CPU per request: "
        f"{served / result['rps'] * 1e6:,.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["stages", "load"])
    parser.add_argument("endpoint", nargs="?", default="predict_batch", choices=["predict", "predict_batch"])
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="MNIST_* settings for the served service (repeatable)",
    )
    parser.add_argument("--users", type=int, default=32, help="locust concurrency (%(default)s)")
    parser.add_argument("--seconds", type=int, default=16, help="measured run (%(default)s s)")
    parser.add_argument("--flamegraph", action="store_true", help="py-spy SVG of one worker")
    parser.add_argument(
        "--collapsed", action="store_true", help="with --flamegraph: py-spy's collapsed stacks (.txt) instead"
    )
    parser.add_argument(
        "--baseline", action="store_true", help="load bench_service's Starlette baseline instead (/predict only)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)",
    )
    args = parser.parse_args()
    images, _ = load_mnist(args.data_dir, "test")
    if args.what == "stages":
        stages(images)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        if args.baseline and (args.endpoint != "predict" or args.flamegraph or env):
            parser.error("--baseline serves /predict only, with its defaults and no flame graph")
        load(
            images[:1024], args.endpoint, env, args.users, args.seconds, args.flamegraph, args.baseline, args.collapsed
        )


if __name__ == "__main__":
    main()
