"""bench_peers' results as markdown (BENCHMARKS.md's section) and a chart."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- bench_peers:start -->", "<!-- bench_peers:end -->"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(r: dict) -> str:
    """The BENCHMARKS.md section: method, the side-by-side table, the targets, the sweep."""
    servers, b = r["servers"], r["batch"]
    project = servers["project"]
    p_rps, p_img = project["predict"]["rps"], project["batch"]["rps"] * b
    lines = [
        f"Machine: {r['machine']}. Model `{r['model']}` on onnxruntime, one intra-op thread per worker, in "
        f"every server; uploads are MNIST test digits as 28x28 PNGs. {r['users']} locust users (FastHttpUser, "
        f"no wait; bench_service's load generator) sharing the cores with the servers; medians of "
        f"{r['rounds']} interleaved rounds of {r['seconds']} s per server and request kind after a "
        f"{r['warmup']} s warm-up, idle servers paused (SIGSTOP). Peers: the minimal preprocessing (Pillow "
        "decode, / 255); this project: its whole upload path (limits, MNIST framing, metrics). Project ratio: "
        "this project's figure / the peer's. CPU: the server's own processes, per image.",
        "",
        "| server | settings | `/predict` req/s | p50 ms | p99 ms | project ratio | CPU ms/image "
        f"| {b}-image batches, images/s | p99 ms | project ratio | CPU ms/image |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    order = sorted(servers, key=lambda n: (n != "project", -servers[n]["predict"]["rps"]))
    for name in order:
        s = servers[name]
        p, q = s["predict"], s["batch"]
        label = s["label"] + (f" {r['versions'][s['dist']]}" if s.get("dist") in r.get("versions", {}) else "")
        own = name == "project"
        fails = p["failures"] + q["failures"]
        lines.append(
            f"| {'**' + label + '**' if own else label} | {s['settings'] or 'as shipped'} | {p['rps']:,.0f} | "
            f"{p['p50_ms']:.0f} | {p['p99_ms']:.0f} | {'' if own else _ratio(p_rps, p['rps'])} | "
            f"{p['cpu_ms_per_request']:.2f} | {q['rps'] * b:,.0f} | {q['p99_ms']:.0f} | "
            f"{'' if own else _ratio(p_img, q['rps'] * b)} | {q['cpu_ms_per_request'] / b:.3f} |"
            + (f" ({fails} failed)" if fails else "")
        )
    for name, why in r.get("not_run", {}).items():
        lines.append(f"| {name} | did not run: {why} | | | | | | | | | |")
    peers = [servers[n] for n in servers if n != "project"]
    if peers:
        best_rps = max(s["predict"]["rps"] for s in peers)
        best_img = max(s["batch"]["rps"] for s in peers) * b
        lowest_p99 = min(s["predict"]["p99_ms"] for s in peers)
        lines += [
            "",
            f"- `/predict`: **{p_rps / best_rps:.2f}x** the best peer's requests/s (target >= 1.2x every "
            f"peer), p99 {project['predict']['p99_ms']:.0f} ms vs the lowest peer p99 {lowest_p99:.0f} ms "
            "(target: the lowest).",
            f"- `/predict_batch`: **{p_img / best_img:.2f}x** the best peer's images/s (target >= 2x).",
        ]
    if r.get("in_process"):
        lines.append(
            f"- `/predict_batch` vs in-process onnxruntime ({r['cores']} threads, batch {b}, every server "
            f"paused): {p_img:,.0f} vs {r['in_process']:,.0f} images/s = **{p_img / r['in_process']:.0%}** "
            "(target >= 70%)."
        )
    if r.get("sweep"):
        lines += ["", "Settings each peer was given: the best `/predict` requests/s of a short sweep "
                  f"(`--sweep`: {r['sweep']['rounds']} round(s) of {r['sweep']['seconds']} s each, interleaved "
                  "per peer):", "", "| peer | settings | `/predict` req/s | p99 ms | images/s, 64 per request |",
                  "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
        for key, variants in r["sweep"]["peers"].items():
            for settings, m in variants.items():
                mark = "**" if settings == r["sweep"]["best"].get(key) else ""
                lines.append(
                    f"| {key} | {mark}{settings}{mark} | {m['rps']:,.0f} | {m['p99_ms']:.0f} | {m['images_s']:,.0f} |"
                )
    lines += [
        "",
        "Rerun: `make bench-peers` (installs the `peers` extra into .venv-peers; TorchServe needs Java), or "
        "`python -m benchmarks.bench_peers --sweep` then `python -m benchmarks.bench_peers`; "
        "`--list` shows each peer's launch file and settings.",
        "",
        "![/predict requests/s and p99, 64-image images/s, per server](benchmarks/peers.png)",
    ]
    return "\n".join(lines)


def write_docs(r: dict, benchmarks_md: Path = REPO / "BENCHMARKS.md") -> None:
    """Our section of BENCHMARKS.md from a results JSON (README links there: measurements live in one place)."""
    write_section(benchmarks_md, START, END, f"## Serving: this project beside the servers users pick\n\n{table(r)}")


def plot(r: dict, path: Path) -> None:
    """/predict requests/s with p99 beside each bar, and 64-image images/s, per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = r["servers"]
    names = sorted(servers, key=lambda n: servers[n]["predict"]["rps"])
    labels = [servers[n]["label"] for n in names]
    colours = ["tab:orange" if n == "project" else "tab:blue" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 1.5), sharey=True)
    rps = [servers[n]["predict"]["rps"] for n in names]
    left.barh(labels, rps, color=colours)
    for i, n in enumerate(names):
        left.text(rps[i], i, f" p99 {servers[n]['predict']['p99_ms']:.0f} ms", va="center", fontsize=8)
    left.set(xlabel="/predict requests/s (one PNG each)", xlim=(0, max(rps) * 1.35))
    right.barh(labels, [servers[n]["batch"]["rps"] * r["batch"] for n in names], color=colours)
    right.set(xlabel=f"images/s, {r['batch']} PNGs per request")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{r['users']} locust users, medians of {r['rounds']} interleaved rounds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
