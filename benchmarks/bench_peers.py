"""This project beside the servers users would pick instead, serving the same model.

    make bench-peers                          # .venv-peers installed, then --sweep and the comparison
    python -m benchmarks.bench_peers --list   # the peers, their settings, what each needs; starts nothing
    python -m benchmarks.bench_peers --sweep  # each peer's settings side by side, then the comparison at the best
    python -m benchmarks.bench_peers          # the comparison at the settings the last sweep chose
    python -m benchmarks.bench_peers --from-json results/peers.json   # the docs and chart from saved results

Peers: a hand-written FastAPI + uvicorn endpoint, TorchServe, KServe's model server, Triton through
PyTriton, LitServe and Ray Serve, each started from its launch file in benchmarks/peers/ with the
interpreter of .venv-peers (the `peers` extra); this project is started as bench_service starts
it. Every peer serves the ONNX file models/served.json names, on onnxruntime with one intra-op
thread per worker, with the same minimal preprocessing (28x28 PNG -> Pillow -> float32 / 255 ->
(N, 1, 28, 28)). Uploads are MNIST test digits as 28x28 PNGs, one per request and 64 per request,
in each server's own request format (multipart; KServe's base64 JSON; Triton's binary BYTES
tensors). All on 127.0.0.1, on free ports, each peer in a temp folder of its own.

Every server is started, checked (its digits must equal in-process onnxruntime's on 64 test
digits, before each round too) and paused, then woken for its turn: one load generator
(bench_service's locust) at a fixed concurrency, interleaved rounds whose order rotates, medians;
each server's own CPU time per image is read from /proc. In-process onnxruntime on every core is
timed with every server paused. `--sweep` first measures every setting of each peer the same way
(short rounds, one peer at a time) and the comparison gives each peer its best `/predict`
setting. Results go to results/peers.json (results/peers-sweep.json), BENCHMARKS.md
between the bench_peers markers, and benchmarks/peers.png. Benchmarks run on request, never in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_service import BOUNDARY, in_process, machine, median_run, run_locust, write_payloads
from benchmarks.peers.registry import PEERS, PEERS_PYTHON, PROJECT, listing, write_requests
from benchmarks.peers.report import START, plot, table, write_docs
from benchmarks.peers.servers import PROBE, Server, probe, start_all
from contract import read_metadata, resolve
from harness.mnist import data_dir, load_mnist
from service.model import Classifier
from service.settings import cpu_count, get_settings

REPO = Path(__file__).resolve().parents[1]
PNG = REPO / "benchmarks" / "peers.png"


@dataclass
class Bench:
    """What the sweep and the comparison share: the model, the uploads and the answers expected."""

    model: Path  # the ONNX file every server loads
    output: str  # its probabilities output, by the metadata's name
    version: str
    pngs: list[bytes]  # the uploads, as the project's bodies carry them
    expected: list[int]  # in-process onnxruntime's digits for the first PROBE
    classifier: Classifier  # on every core: the ceiling
    pixels: np.ndarray  # (N, 1, 28, 28) float32 in [0, 1]
    cores: int
    folder: Path  # locust's payloads: meta.json, the bodies, the locustfile
    logs: Path  # each server's log


def setup(args: argparse.Namespace, tmp: Path, peers: list[str]) -> Bench:
    """The served model (through the contract, as the service resolves it), the uploads and every
    server's request bodies on disk."""
    s = get_settings()
    files = resolve(s.models_dir, s.model_version, s.model_path)
    meta = read_metadata(files)
    images = load_mnist(args.data_dir, "test")[0][: args.images]  # (N, 28, 28) uint8
    pixels = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28) float32 in [0, 1]
    classifier = Classifier(files, "cpu", cpu_count())
    folder, logs = tmp / "payloads", tmp / "logs"
    folder.mkdir()
    logs.mkdir()
    write_payloads(folder, images, args.batch)  # the project's bodies (bench_service's), meta.json, locustfile
    singles = json.loads((folder / "meta.json").read_text())["predict"]["files"]
    pngs = [png_of((folder / f).read_bytes()) for f in singles]
    for key in peers:
        write_requests(folder, key, PEERS[key], pngs, args.batch)
    expected = classifier.probabilities(pixels[:PROBE]).argmax(axis=1).tolist()
    return Bench(files.onnx, meta.outputs.probabilities.name, meta.version, pngs, expected, classifier, pixels,
                 cpu_count(), folder, logs)  # fmt: skip


def png_of(body: bytes) -> bytes:
    """The PNG inside one of bench_service's single-image multipart bodies."""
    start = body.index(b"\r\n\r\n") + 4
    return body[start : body.rindex(f"\r\n--{BOUNDARY}--".encode())]


def load(server: Server, bench: Bench, kind: str, users: int, seconds: int) -> dict:
    """One locust run against a woken server, and the CPU its processes used per request."""
    project_kind = "predict" if kind == "predict" else "predict_batch"
    meta_kind = project_kind if server.peer is PROJECT else f"{server.key}.{kind}"
    before = server.cpu_s()
    try:
        result = run_locust(server.url, bench.folder, meta_kind, users, seconds)
    except ValueError:  # locust's percentiles read "N/A": no request succeeded
        print(f"  {server.name}: no {kind} request succeeded in {seconds} s", flush=True)
        inf = float("inf")
        return {"rps": 0.0, "p50_ms": inf, "p99_ms": inf, "requests": 0, "failures": 1, "cpu_ms_per_request": inf}
    result["cpu_ms_per_request"] = 1000 * (server.cpu_s() - before) / max(result["requests"], 1)
    return result


def rounds(servers: list[Server], bench: Bench, args: argparse.Namespace, n: int, seconds: int, ceiling: bool) -> dict:
    """Warm-up, then `n` interleaved rounds (the order rotates each round), each server woken for
    its turn only; medians per server, and in-process onnxruntime between rounds if `ceiling`."""
    runs: dict[str, dict[str, list[dict]]] = {s.name: {"predict": [], "batch": []} for s in servers}
    ceilings: list[float] = []
    for server in servers:
        server.resume()
        print(f"warm-up: {server.name} ...", flush=True)
        for kind in ("predict", "batch"):
            load(server, bench, kind, args.users, min(args.warmup, seconds))
        server.pause()
    for r in range(n):
        for server in servers[r % len(servers) :] + servers[: r % len(servers)]:
            server.resume()
            probe(server, bench.pngs, bench.expected)
            for kind in ("predict", "batch"):
                m = load(server, bench, kind, args.users, seconds)
                runs[server.name][kind].append(m)
                images = m["rps"] * (args.batch if kind == "batch" else 1)
                print(
                    f"round {r + 1}/{n}: {server.name:<12} {kind:<7} {images:>9,.0f} images/s, "
                    f"p99 {m['p99_ms']:>5.0f} ms, {m['failures']} failed",
                    flush=True,
                )
            server.pause()
        if ceiling:  # every server paused: the ceiling, undisturbed
            ceilings.append(in_process(bench.classifier, bench.pixels, args.batch, seconds / 2))
    out: dict = {}
    for server in servers:
        out[server.name] = {"label": server.label, "settings": server.settings, "dist": server.peer.dist}
        for kind, rs in runs[server.name].items():
            out[server.name][kind] = median_run(rs) | {
                "cpu_ms_per_request": statistics.median(x["cpu_ms_per_request"] for x in rs)
            }
    if ceilings:
        out["in_process"] = statistics.median(ceilings)
    return out


def sweep(bench: Bench, args: argparse.Namespace, peers: list[str], failed: dict[str, str]) -> dict:
    """Each peer's settings started together and measured in short interleaved rounds, one peer at
    a time; the best is the one with the most `/predict` requests/s and no failures."""
    out: dict = {"rounds": args.sweep_rounds, "seconds": args.sweep_seconds, "peers": {}, "best": {}}
    for key in peers:
        print(f"sweep: {key}", flush=True)
        with contextlib.ExitStack() as stack:
            wanted = [(f"{key}:{i}", key, settings) for i, settings in enumerate(PEERS[key].variants)]
            servers = start_all(
                stack, wanted, bench.model, bench.output, bench.logs, bench.pngs, bench.expected, failed
            )
            measured = rounds(servers, bench, args, args.sweep_rounds, args.sweep_seconds, ceiling=False)
        variants = {
            m["settings"]: {
                "rps": m["predict"]["rps"],
                "p99_ms": m["predict"]["p99_ms"],
                "images_s": m["batch"]["rps"] * args.batch,
                "failures": m["predict"]["failures"] + m["batch"]["failures"],
            }
            for m in measured.values()
        }
        out["peers"][key] = variants
        clean = {v: m for v, m in variants.items() if not m["failures"]}
        if clean:
            out["best"][key] = max(clean, key=lambda v: clean[v]["rps"])
            print(f"sweep: {key} at its best with {out['best'][key]!r}", flush=True)
    return out


def compare(bench: Bench, args: argparse.Namespace, peers: list[str], best: dict, failed: dict[str, str]) -> dict:
    """The project and each peer at its best settings, all started, measured in the same rounds."""
    wanted = [("project", "project", "")]
    for key in peers:  # the sweep's choice, if it still names one of the peer's settings; else the default
        variants = PEERS[key].variants
        wanted.append((key, key, best[key] if best.get(key) in variants else next(iter(variants))))
    with contextlib.ExitStack() as stack:
        servers = start_all(stack, wanted, bench.model, bench.output, bench.logs, bench.pngs, bench.expected, failed)
        if not servers or servers[0].name != "project":
            sys.exit(f"this project's service did not start: {failed.get('project')}")
        return rounds(servers, bench, args, args.rounds, args.seconds, ceiling=True)


def versions() -> dict[str, str]:
    """Installed versions of the peers (in .venv-peers) and of BentoML (here)."""
    from importlib.metadata import version

    code = "import json, importlib.metadata as m, sys; print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    dists = [p.dist for p in PEERS.values()]
    done = subprocess.run([str(PEERS_PYTHON), "-c", code, *dists], capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout), "bentoml": version("bentoml")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS), metavar="PEER",
                        help=f"which peers (default: all of {', '.join(PEERS)})")  # fmt: skip
    parser.add_argument("--users", type=int, default=32, help="locust concurrency (%(default)s)")
    parser.add_argument("--seconds", type=int, default=10, help="one measured run (%(default)s s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (%(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up run per server and kind (%(default)s s)")
    parser.add_argument("--images", type=int, default=1024, help="distinct uploads (%(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch request (%(default)s)")
    parser.add_argument("--data-dir", type=Path, default=data_dir(), help="folder holding MNIST/raw")
    parser.add_argument("--sweep", action="store_true", help="sweep each peer's settings first, then compare")
    parser.add_argument("--sweep-rounds", type=int, default=1, help="rounds per setting in the sweep (%(default)s)")
    parser.add_argument("--sweep-seconds", type=int, default=5, help="one sweep run (%(default)s s)")
    parser.add_argument("--sweep-json", type=Path, default=REPO / "results" / "peers-sweep.json",
                        help="written by --sweep, read for each peer's settings (%(default)s)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=REPO / "results" / "peers.json", help="results (%(default)s)")
    parser.add_argument("--no-write", action="store_true", help="save the JSON and print; keep the docs and chart")
    parser.add_argument("--from-json", type=Path, metavar="PATH", help="write the docs and chart from saved results")
    parser.add_argument("--list", action="store_true", help="list the peers and their settings; start nothing")
    args = parser.parse_args()
    if args.list:
        print(listing())
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_docs(saved)
        plot(saved, PNG)
        print(f"wrote BENCHMARKS.md ({START}) and {PNG.relative_to(REPO)} from {args.from_json}")
        return
    if not PEERS_PYTHON.exists():
        sys.exit(f"no {PEERS_PYTHON}: `make bench-peers` installs the peers (the `peers` extra) there")

    peers = [k for k in args.peers if all(shutil.which(n) for n in PEERS[k].needs)]
    failed = {k: f"needs {', '.join(PEERS[k].needs)} on PATH" for k in args.peers if k not in peers}
    for key, why in failed.items():
        print(f"{key} left out: {why}", flush=True)
    t0 = time.monotonic()
    results: dict = {"machine": machine(), "versions": versions()}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        bench = setup(args, Path(tmp), peers)
        if args.sweep:
            args.sweep_json.parent.mkdir(parents=True, exist_ok=True)
            args.sweep_json.write_text(json.dumps(sweep(bench, args, peers, failed), indent=2))
            print(f"wrote {args.sweep_json}", flush=True)
        swept = json.loads(args.sweep_json.read_text()) if args.sweep_json.exists() else {}
        servers = compare(bench, args, peers, swept.get("best", {}), failed)
    results |= {
        "machine_after": machine(),
        "model": bench.version,
        **{k: getattr(args, k) for k in ("users", "seconds", "rounds", "warmup", "batch")},
        "cores": bench.cores,
        "in_process": servers.pop("in_process", None),
        "servers": servers,
        "not_run": {k: why for k, why in failed.items() if ":" not in k},
        "sweep": swept or None,
        "wall_s": round(time.monotonic() - t0),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(table(results))
    if not args.no_write:
        write_docs(results)
        plot(results, PNG)
    written = "" if args.no_write else f"BENCHMARKS.md ({START}), {PNG.relative_to(REPO)} and "
    print(f"done in {results['wall_s'] / 60:.1f} min: wrote {written}{args.json}")


if __name__ == "__main__":
    main()
