"""The serving image: build time (cold and warm), size, and start-up to /readyz, written to BENCHMARKS.md.

Builds with podman as `make container` does. --cold first removes the cached Debian base image
and builds without podman's layer cache: what a fresh machine pays. The second build is warm
(base and layers cached). Start-up is timed from `podman run` (read-only root, no capabilities,
2 CPUs) to the first 200 from /readyz, over --runs containers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.report import write_section
from deploy.container import base_tag, build, container_env, image_bytes, image_tag, served_version
from harness.server import free_port

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_container:start -->", "<!-- bench_container:end -->"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=container_env(), check=check, capture_output=True, text=True)


def timed_build(tag: str, cold: bool) -> float:
    """Seconds for base (if missing) + bento + image."""
    start = time.monotonic()
    build(tag, "podman", "debootstrap", no_cache=cold)
    return time.monotonic() - start


def cpu_seconds(name: str) -> float | None:
    """CPU time the container's cgroup has used (v2 cpu.stat, v1 cpuacct), None where unreadable."""
    path = podman("inspect", "--format", "{{.State.CgroupPath}}", name).stdout.strip().lstrip("/")
    v2, v1 = Path("/sys/fs/cgroup") / path / "cpu.stat", Path("/sys/fs/cgroup/cpuacct") / path / "cpuacct.usage"
    if v2.exists():
        usage = dict(line.split() for line in v2.read_text().splitlines())
        return int(usage["usage_usec"]) / 1e6
    if v1.exists():
        return int(v1.read_text()) / 1e9
    return None


def start_up(tag: str, timeout_s: float = 120.0) -> tuple[float, float | None]:
    """(seconds from `podman run` to /readyz 200, CPU seconds the container used by then), hardened
    as in Kubernetes; the container is removed after. CPU time does not depend on other load."""
    name, port = f"mnist-bench-{os.getpid()}-{time.monotonic_ns()}", free_port()
    start = time.monotonic()
    podman("run", "--detach", "--name", name, "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
           "--cpus=2", "--publish", f"127.0.0.1:{port}:3000", tag)  # fmt: skip
    try:
        while time.monotonic() - start < timeout_s:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - start, cpu_seconds(name)
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"{tag} not ready after {timeout_s} s:\n{podman('logs', name, check=False).stderr[-2000:]}")
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="drop the cached base image and the layer cache first")
    parser.add_argument("--runs", type=int, default=5, help="containers started for the start-up time")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md", help="markdown file to update")
    args = parser.parse_args()

    tag = image_tag(served_version())
    builds = []
    if args.cold:
        podman("rmi", "--force", base_tag(), check=False)
        print("cold build (debootstrap base, no layer cache) ...", flush=True)
        builds.append(("cold: base made by debootstrap, no layer cache", timed_build(tag, cold=True)))
    print("warm build (base and layers cached) ...", flush=True)
    builds.append(("warm: base and layers cached", timed_build(tag, cold=False)))
    size = image_bytes(tag)
    starts = [start_up(tag) for _ in range(args.runs)]
    ready = [wall for wall, _ in starts]
    cpu = [c for _, c in starts if c is not None]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    rows = [
        "| measure | result |",
        "| --- | ---: |",
        f"| image `{tag}` size (podman, uncompressed) | {size / 1e6:.0f} MB |",
    ]
    rows += [f"| build time, {what} | {secs:.0f} s |" for what, secs in builds]
    rows.append(f"| start-up to `/readyz` 200, median of {args.runs} (max) | "
                f"{statistics.median(ready):.1f} s ({max(ready):.1f} s) |")  # fmt: skip
    if cpu:  # what start-up costs whatever else runs: on 2 free cores it cannot take less than half
        rows.append(f"| CPU time the container used until ready, median (2 free cores: at least half as long) | "
                    f"{statistics.median(cpu):.1f} s |")  # fmt: skip
    table = "\n".join(rows)
    print(table)
    section = (
        f"{START}\n## Container image\n\n"
        f"`python -m benchmarks.bench_container --cold` (or `make benchmark-container`): podman "
        f"{podman('--version').stdout.split()[-1]}, {os.cpu_count()} cores, load avg {load}; the container "
        f"runs with a read-only root, no capabilities and `--cpus=2` (2 workers). Builds include "
        f"`bentoml build` and installing uv.lock's serve packages from PyPI.\n\n{table}\n{END}"
    )
    write_section(args.write, START, END, section.removeprefix(START).removesuffix(END))
    print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
