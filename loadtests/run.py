"""Load-test a deployment: start the service (unless --host), run locust headless, judge the run.

    python -m loadtests.run                          # local service, defaults for a 2-core box
    python -m loadtests.run --host https://mnist.example.com --users 50 --duration 300
    python -m loadtests.run --soak                   # 10 minutes, server memory must not grow >10%

Writes locust's HTML report and CSV statistics, guard.json (summary and verdict), memory.csv
(local runs) and latency.png to a fresh folder under results/, and exits non-zero when a
request failed, p99 is over budget, accuracy under load fell, or (soak) memory grew.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from harness.checks import Budgets, memory_growth
from harness.mnist import data_dir
from harness.server import running_service

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
logger = logging.getLogger("loadtests.run")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options with defaults that pass with room to spare on a 2-core machine."""
    b = Budgets()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--host",
        default=os.environ.get("MNIST_SERVICE_URL"),
        help="deployment to test ($MNIST_SERVICE_URL); none: start one locally",
    )
    p.add_argument("--users", type=int, default=10, help="concurrent simulated clients (default %(default)s)")
    p.add_argument("--spawn-rate", type=float, default=2.0, help="users started per second (default %(default)s)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of load (default 120, enough for all 10,000 test digits at 10 users; 600 with --soak)",
    )
    p.add_argument(
        "--soak", action="store_true", help="long run that also checks the server's memory (local service only)"
    )
    p.add_argument("--p99-ms", type=float, default=b.p99_ms, help="p99 latency budget in ms (default %(default)s)")
    p.add_argument(
        "--max-accuracy-drop-pp",
        type=float,
        default=b.max_accuracy_drop_pp,
        help="allowed drop under the model's recorded test accuracy, in points (default %(default)s)",
    )
    p.add_argument(
        "--min-photo-accuracy",
        type=float,
        default=b.min_photo_accuracy,
        help="floor for photo-like uploads (default %(default)s)",
    )
    p.add_argument(
        "--non-digit-share",
        type=float,
        default=0.05,
        help="share of single-image uploads that are not digits, checked to come back flagged (default %(default)s)",
    )
    p.add_argument(
        "--min-non-digits-flagged",
        type=float,
        default=b.min_non_digits_flagged,
        help="floor for non-digits flagged, when the model has a detector (default %(default)s)",
    )
    p.add_argument(
        "--min-digits-kept",
        type=float,
        default=b.min_digits_kept,
        help="floor for MNIST digits answered is_digit true, when the model has a detector (default %(default)s)",
    )
    p.add_argument(
        "--min-number-accuracy",
        type=float,
        default=b.min_number_accuracy,
        help="floor for handwritten numbers read exactly by /read_number (default %(default)s)",
    )
    p.add_argument(
        "--max-memory-growth",
        type=float,
        default=0.10,
        help="soak: allowed growth of server RSS from after warm-up to the end (default %(default)s)",
    )
    p.add_argument(
        "--data-dir", default=str(data_dir()), help="folder holding MNIST/raw (default $MNIST_DATA_DIR or %(default)s)"
    )
    p.add_argument(
        "--results", type=Path, default=None, help="output folder (default results/<loadtest|soak>-<timestamp>)"
    )
    p.add_argument(
        "--progress-every", type=float, default=10.0, help="seconds between progress lines (default %(default)s)"
    )
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 600.0 if args.soak else 120.0
    if args.results is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        args.results = REPO / "results" / f"{'soak' if args.soak else 'loadtest'}-{stamp}"
    return args


@contextlib.contextmanager
def _service(host: str | None, results: Path) -> Iterator[str]:
    """The URL to load: --host as given, or a local `bentoml serve` stopped afterwards."""
    if host:
        yield host.rstrip("/")
        return
    logger.info("starting the service locally (log: %s)", results / "serve.log")
    with running_service(log_path=results / "serve.log") as url:
        yield url


def _children_rss(parent: psutil.Process, exclude: set[int]) -> int:
    """Resident memory of all descendants of `parent` (the server tree), skipping `exclude`."""
    total = 0
    for proc in parent.children(recursive=True):
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def _locust_cmd(args: argparse.Namespace, url: str) -> list[str]:
    out = args.results
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{round(args.duration)}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--p99-budget-ms",
        str(args.p99_ms),
        "--max-accuracy-drop-pp",
        str(args.max_accuracy_drop_pp),
        "--min-photo-accuracy",
        str(args.min_photo_accuracy),
        "--non-digit-share",
        str(args.non_digit_share),
        "--min-non-digits-flagged",
        str(args.min_non_digits_flagged),
        "--min-digits-kept",
        str(args.min_digits_kept),
        "--min-number-accuracy",
        str(args.min_number_accuracy),
        "--mnist-data-dir",
        str(args.data_dir),
        "--guard-json",
        str(out / "guard.json"),
        "--progress-every",
        str(args.progress_every),
    ]


def run_locust(args: argparse.Namespace, url: str, watch_memory: bool) -> tuple[int, list]:
    """Run locust to completion; meanwhile sample the server tree's RSS every few seconds."""
    me = psutil.Process()
    # Before locust starts, every child of this process belongs to the server.
    server_pids = {p.pid for p in me.children(recursive=True)} if watch_memory else set()
    logger.info("locust: %d users, spawn %.1f/s, %.0f s against %s", args.users, args.spawn_rate, args.duration, url)
    proc = subprocess.Popen(_locust_cmd(args, url), cwd=REPO)  # its log lines are our progress
    locust_tree = {proc.pid}
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        if watch_memory and server_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                locust_tree |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            samples.append((time.monotonic(), _children_rss(me, exclude=locust_tree)))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
    return proc.returncode, samples


def _write_memory(samples: list[tuple[float, int]], path: Path) -> None:
    t0 = samples[0][0] if samples else 0.0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rss_bytes"])
        writer.writerows((round(t - t0, 1), rss) for t, rss in samples)


def latency_chart(history_csv: Path, samples: list[tuple[float, int]], out: Path) -> Path | None:
    """p50/p99 and req/s over time (and server RSS when sampled), from locust's history CSV."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib not installed: no latency chart")
        return None
    rows = list(csv.DictReader(history_csv.open())) if history_csv.exists() else []
    total = [r for r in rows if r["Name"] == "Aggregated" and r["99%"] not in ("N/A", "")]
    if not total:
        return None
    t0 = int(total[0]["Timestamp"])
    http_rps: dict[int, float] = {}
    for r in rows:  # HTTP rows only: ANSWER events count digits, not requests
        if r["Type"] not in ("ANSWER", "") and r["Name"] != "Aggregated":
            t = int(r["Timestamp"]) - t0
            http_rps[t] = http_rps.get(t, 0.0) + float(r["Requests/s"])
    panels = 3 if samples else 2
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.6 * panels), sharex=True)
    ts = [int(r["Timestamp"]) - t0 for r in total]
    for pct in ("50%", "95%", "99%"):
        axes[0].plot(ts, [float(r[pct]) for r in total], label=f"p{pct[:-1]}")
    axes[0].set_ylabel("latency (ms)")
    axes[0].legend(loc="upper right")
    axes[0].set_title("latency and throughput under load (percentiles over the last ~10 s)")
    axes[1].plot(sorted(http_rps), [http_rps[t] for t in sorted(http_rps)], color="tab:green")
    axes[1].set_ylabel("HTTP req/s")
    if samples:
        m0 = samples[0][0]
        axes[2].plot([t - m0 for t, _ in samples], [rss / 2**20 for _, rss in samples], color="tab:red")
        axes[2].set_ylabel("server RSS (MiB)")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _one_line(s: dict[str, Any]) -> str:
    acc = f"{100 * s['accuracy']:.2f}%" if s.get("accuracy") is not None else "n/a"
    rec = f"{100 * s['recorded_accuracy']:.2f}%" if s.get("recorded_accuracy") else "n/a"
    photo = f"{100 * s['photo_accuracy']:.2f}%" if s.get("photo_accuracy") is not None else "n/a"
    if s.get("non_digit_checks") == "checked":
        kept = f"{100 * s['digits_kept']:.2f}%" if s.get("digits_kept") is not None else "n/a"
        flagged = f"{100 * s['non_digits_flagged']:.1f}%" if s.get("non_digits_flagged") is not None else "n/a"
        detector = f"; non-digits flagged {flagged} of {s['non_digits_checked']}, digits kept {kept}"
    else:
        detector = f"; non-digit checks {s.get('non_digit_checks', 'skipped')}"
    return (
        f"{s['users']} users, {s['duration_s']:.0f} s: {s['http_requests']} requests, "
        f"{s['req_per_s']:.1f} req/s, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
        f"{s['http_failures']} failed; accuracy {acc} on {s['digits_checked']} digits "
        f"(recorded {rec}), photo-like {photo} on {s['photo_uploads_checked']}{detector}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one load test (or soak) and return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    watch_memory = args.soak and not args.host
    if args.soak and args.host:
        logger.warning("--soak with --host: the server's memory is remote, so it is not checked")
    with _service(args.host, args.results) as url:
        code, samples = run_locust(args, url, watch_memory)
    guard_path = args.results / "guard.json"
    if not guard_path.exists():
        logger.error("locust wrote no %s (exit code %d): see its output above", guard_path, code)
        return code or 1
    summary = json.loads(guard_path.read_text())
    if watch_memory:
        _write_memory(samples, args.results / "memory.csv")
        window = min(60.0, args.duration / 5)
        start, end, growth = memory_growth(samples, warmup_s=window, window_s=window)
        summary["memory"] = {
            "start_rss_mb": round(start / 2**20, 1),
            "end_rss_mb": round(end / 2**20, 1),
            "growth": round(growth, 4),
        }
        logger.info(
            "server RSS %.0f MiB after warm-up -> %.0f MiB at the end (%+.1f%%)",
            start / 2**20,
            end / 2**20,
            100 * growth,
        )
        if growth > args.max_memory_growth:
            summary["reasons"].append(
                f"server memory grew {100 * growth:.1f}% (allowed {100 * args.max_memory_growth:.0f}%)"
            )
            summary["passed"] = False
            code = code or 1
        guard_path.write_text(json.dumps(summary, indent=2) + "\n")
    chart = latency_chart(args.results / "locust_stats_history.csv", samples, args.results / "latency.png")
    verdict = "PASS" if code == 0 else "FAIL"
    print(f"{verdict}: {_one_line(summary)}")
    for reason in summary["reasons"]:
        print(f"  - {reason}")
    wrote = ["report.html", "locust_stats.csv", "guard.json"] + (["latency.png"] if chart else [])
    print(f"wrote {', '.join(wrote)} to {args.results}")
    return code


if __name__ == "__main__":
    sys.exit(main())
