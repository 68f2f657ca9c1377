"""Side-by-side in-process onnxruntime throughput of the architectures, written to BENCHMARKS.md.

    python -m benchmarks.bench_models            # or: make benchmark-models

Models come from models/ (the newest version of each architecture; for the served architecture the
served version, beside the mnist-cnn it replaced when there is one); an architecture with no version
there is exported with random weights (speed does not depend on the weights). Rounds are interleaved,
so background load hits every model alike, and the median round is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.report import write_section
from contract import read_served

REPO = Path(__file__).resolve().parents[1]
ARCHS = ("seed-small", "lenet5", "seed-deep", "mnist-cnn")
PREVIOUS = "mnist-cnn (previously served)"
ALONE = "mnist-cnn classifier alone"  # the served graph's classifier without its digit detector
START, END = "<!-- bench_models:start -->", "<!-- bench_models:end -->"


def model_paths(models_dir: Path, tmp: Path, candidate: Path | None = None) -> dict[str, tuple[Path, dict | None]]:
    """Newest version of each architecture in models/, else a random-weight export.

    candidate: a model folder timed in the served model's place (before it is promoted).
    """
    found: dict[str, tuple[Path, dict | None]] = {}
    for meta_path in sorted(models_dir.glob("*/metadata.json"), key=lambda p: json.loads(p.read_text())["exported_at"]):
        meta = json.loads(meta_path.read_text())
        found[meta["architecture"]] = (meta_path.parent / "model.onnx", meta)
    served = read_served(models_dir)
    meta = json.loads((models_dir / served.served / "metadata.json").read_text())
    found[meta["architecture"]] = (models_dir / served.served / "model.onnx", meta)  # the served one, not the newest
    history = served.history[:1]
    if candidate is not None:
        history = [served.served]
        meta = json.loads((candidate / "metadata.json").read_text())
        found[meta["architecture"]] = (candidate / "model.onnx", meta)
    beside = (meta.get("digit_detector") or {}).get("trained_beside")
    if beside and (models_dir / beside / "model.onnx").exists():  # what the detector costs, side by side
        found[ALONE] = (
            models_dir / beside / "model.onnx",
            json.loads((models_dir / beside / "metadata.json").read_text()),
        )
    for older in history:  # the model it replaced, side by side (a new model must be no slower)
        meta = json.loads((models_dir / older / "metadata.json").read_text())
        if meta["architecture"] == "mnist-cnn" and older != found["mnist-cnn"][1]["version"]:
            found[PREVIOUS] = (models_dir / older / "model.onnx", meta)
    for arch in ARCHS:
        if arch not in found:
            from training.export import export_onnx  # torch only when a model is missing
            from training.models import ModelConfig, build_model

            path = tmp / f"{arch}.onnx"
            export_onnx(build_model(ModelConfig(arch=arch)), path)
            found[arch] = (path, None)
    return {a: found[a] for a in (*ARCHS, ALONE, PREVIOUS) if a in found}


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure(sessions: dict[str, ort.InferenceSession], batch: int, rounds: int, window: float) -> dict[str, float]:
    """Median images/s over interleaved timing windows."""
    x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
    runs: dict[str, list[float]] = {a: [] for a in sessions}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, {s.get_inputs()[0].name: x})
    for _ in range(rounds):
        for arch, s in sessions.items():
            name, n, t0 = s.get_inputs()[0].name, 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < window:
                s.run(None, {name: x})
                n += batch
            runs[arch].append(n / elapsed)
    return {a: statistics.median(v) for a, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--window", type=float, default=0.5, help="seconds per timing window")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md", help="markdown file to update")
    parser.add_argument("--png", type=Path, default=REPO / "benchmarks" / "models.png")
    parser.add_argument("--candidate", type=Path, help="a model folder timed in the served model's place")
    parser.add_argument("--no-write", action="store_true", help="print only: leave BENCHMARKS.md and the PNG")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models = model_paths(args.models_dir, Path(tmp), args.candidate)
        sessions = {a: session(p, args.threads) for a, (p, _) in models.items()}
        speeds = {}
        for bs in (1, 64, 256):
            print(f"measuring batch {bs} ...", flush=True)
            speeds[bs] = measure(sessions, bs, args.rounds, args.window)

    rows = ["| architecture | version | parameters | test accuracy | img/s b=1 | img/s b=64 | img/s b=256 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for arch, (_, meta) in models.items():
        acc = f"{100 * meta['test_accuracy']:.2f}%" if meta else "(not trained)"
        version = meta["version"] if meta else "random weights"
        params = f"{meta['parameters']:,}" if meta else ""
        cells = " | ".join(f"{speeds[bs][arch]:,.0f}" for bs in (1, 64, 256))
        rows.append(f"| {arch} | {version} | {params} | {acc} | {cells} |")
    ratio = speeds[64]["mnist-cnn"] / speeds[64]["seed-deep"]
    verdict = "meets" if ratio >= 2 else "MISSES"
    table = "\n".join(rows)
    summary = f"mnist-cnn / seed-deep at batch 64: {ratio:.2f}x ({verdict} the 2x target)"
    if PREVIOUS in speeds[64]:
        before = speeds[64][PREVIOUS]
        summary += f"; served mnist-cnn / previously served at batch 64: {speeds[64]['mnist-cnn'] / before:.2f}x"
    if ALONE in speeds[64]:
        cost = speeds[64]["mnist-cnn"] / speeds[64][ALONE]
        summary += f"; served graph (classifier + digit detector) / its classifier alone at batch 64: {cost:.2f}x"
    print(table, "", summary, sep="\n")
    if args.no_write:
        return

    cpu = platform.processor() or platform.machine()
    section = (
        f"{START}\n## Models: in-process onnxruntime throughput\n\n"
        f"`python -m benchmarks.bench_models` (or `make benchmark-models`): onnxruntime {ort.__version__}, "
        f"CPU execution provider, {args.threads} intra-op threads, {cpu}, {os.cpu_count()} cores; median of "
        f"{args.rounds} interleaved {args.window}s windows.\n\n{table}\n\n{summary}.\n\n"
        f"![throughput](benchmarks/models.png)\n{END}"
    )
    write_section(args.write, START, END, section.removeprefix(START).removesuffix(END))
    _plot(speeds, args.png)
    print(f"wrote {args.write} and {args.png}")


def _plot(speeds: dict[int, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    archs = list(speeds[64])
    width = 0.25
    for i, bs in enumerate(speeds):
        ax.bar(np.arange(len(archs)) + (i - 1) * width, [speeds[bs][a] for a in archs], width, label=f"batch {bs}")
    ax.set_xticks(range(len(archs)), archs)
    ax.set(ylabel="images / s", title="onnxruntime CPU throughput (2 threads)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
