"""Every kind of upload at once: how many real digits the detector flags, how many non-digits it catches.

    python -m benchmarks.bench_detector                      # the served model
    python -m benchmarks.bench_detector --model runs/head/model --no-write

bench_non_digits's uploads (MNIST test, UCI digits, photo-like digits, the nine non-digit kinds),
plus MNIST test digits reduced to 8x8 the UCI way and printed characters in font families the
detector never trained on (harness.glyph_uploads): printed digits, letters one by one (those that
print as a digit apart), symbols. Every upload is framed by service.images.frames.read_frames as /predict
frames it; a refused one (no ink) counts as flagged. Writes results/detector.json, the trade-off
curve docs/img/digit-threshold.png (share of real digits kept against share of each non-digit
kind flagged, as the threshold moves) and BENCHMARKS.md's section.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_non_digits import HARD_ROW, MNIST, PHOTO, Group, auroc, build_groups, frame_each
from benchmarks.report import write_section
from contract import resolve
from harness.detector import ScoredModel
from harness.glyph_uploads import SETS, iter_glyph_uploads
from harness.mnist import data_dir, load_mnist
from harness.non_digits import HELD_OUT_KINDS, TRAINED_KINDS
from harness.uploads import HARD, PHOTO_LIKE, mnist_as_8x8, png_8x8

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_detector:start -->", "<!-- bench_detector:end -->"
LOWRES = "MNIST test digits as 8x8"
PRINTED = "printed digits (test fonts)"
LETTERS = "letters (test fonts)"
LOOKALIKES = "look-alike letters O o I l S Z B b g q (test fonts)"
SYMBOLS = "symbols (test fonts)"
BRACKETS = "brackets ( ) [ ] { } (test fonts)"
# The targets: real digits flagged at most 2% (each kind), held-out non-digits flagged at least 95%,
# AUROC against MNIST test digits at least 0.995.
MAX_DIGITS_FLAGGED, MIN_FLAGGED, MIN_AUROC = 0.02, 0.95, 0.995
HELD_OUT = (*HELD_OUT_KINDS, LETTERS, SYMBOLS)


def glyph_groups(per_char: int, seed: int, mnist_dir: Path) -> list[Group]:
    """MNIST as 8x8, and the printed characters' uploads, framed; letters keep their character."""
    images, labels = load_mnist(mnist_dir, "test")
    out = []
    frames, answered = frame_each([png_8x8(mnist_as_8x8(d)) for d in images])
    out.append(Group(LOWRES, "digits", frames, int((~answered).sum()), labels=labels[answered]))
    uploads = list(iter_glyph_uploads(per_char, seed))
    names = {
        "printed digits": PRINTED,
        "letters": LETTERS,
        "look-alike letters": LOOKALIKES,
        "symbols": SYMBOLS,
        "brackets": BRACKETS,
    }
    for set_name, name in names.items():
        mine = [u for u in uploads if u.set == set_name]
        frames, answered = frame_each([u.data for u in mine])
        chars = np.array([u.char for u in mine])
        role = "digits" if set_name == "printed digits" else "held-out" if name in HELD_OUT else "look-alike"
        group = Group(name, role, frames, int((~answered).sum()), made=chars[answered])
        if role == "digits":
            group.labels = np.array([int(c) for c in chars[answered]])
        out.append(group)
        print(f"  framed {len(mine):5d} {name}, {(~answered).sum()} refused", flush=True)
    return out


def measure(groups: list[Group], model: ScoredModel) -> dict[str, Any]:
    """Flagged share and AUROC vs MNIST test per group, the pooled held-out row, letters one by one."""
    t = model.threshold
    assert t is not None
    mnist = next(g for g in groups if g.name == MNIST)
    for g in groups:
        g.scores[model.version] = model(g.frames)
    ref = mnist.scores[model.version].digit_score
    rows: dict[str, Any] = {}

    def row(name: str, role: str, members: list[Group]) -> dict[str, Any]:
        score = np.concatenate([g.scores[model.version].digit_score for g in members])
        n, refused = sum(g.n for g in members), sum(g.refused for g in members)
        r: dict[str, Any] = {"role": role, "n": n, "refused": refused,
                             "flagged": (int((score < t).sum()) + refused) / max(n, 1)}  # fmt: skip
        if role != "digits":
            r["auroc_vs_mnist"] = auroc(ref, score)
        else:
            labels = np.concatenate([g.labels for g in members if g.labels is not None])
            probs = np.concatenate([g.scores[model.version].probabilities for g in members])
            r["accuracy"] = float((probs.argmax(1) == labels).sum() / max(n, 1)) if len(labels) == len(probs) else None
        return r

    for g in groups:
        rows[g.name] = row(g.name, g.role, [g])
    rows[PHOTO] = row(PHOTO, "digits", [g for g in groups if g.name.removeprefix("digits: ") in PHOTO_LIKE])
    rows[HARD_ROW] = row(HARD_ROW, "digits", [g for g in groups if g.name.removeprefix("digits: ") in HARD])
    held = [g for g in groups if g.name in HELD_OUT]
    rows["held-out kinds together"] = row("held-out kinds together", "held-out", held)
    rows["trained kinds together"] = row(
        "trained kinds together", "trained", [g for g in groups if g.role == "trained"]
    )
    by_char: dict[str, float] = {}
    for g in groups:
        if g.name in (LETTERS, LOOKALIKES, SYMBOLS, BRACKETS, PRINTED) and g.made is not None:
            score = g.scores[model.version].digit_score
            for c in np.unique(g.made):
                by_char[str(c)] = float((score[g.made == c] < t).mean())
    return {"threshold": t, "rows": rows, "flagged_by_char": by_char}


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    rows = results["rows"]
    digit_rows = [n for n, r in rows.items() if r["role"] == "digits"]
    worst = max(digit_rows, key=lambda n: rows[n]["flagged"])
    held = rows["held-out kinds together"]
    return {
        "worst_digit_kind": worst,
        "worst_digit_flagged": rows[worst]["flagged"],
        "digit_kinds_over": [n for n in digit_rows if rows[n]["flagged"] > MAX_DIGITS_FLAGGED],
        "held_out_flagged": held["flagged"],
        "held_out_auroc": held["auroc_vs_mnist"],
        "held_out_kinds_under": [n for n in HELD_OUT if rows[n]["flagged"] < MIN_FLAGGED],
    }


def tradeoff_png(groups: list[Group], model: ScoredModel, out: Path) -> None:
    """Left: share of each kind of real digit kept as the threshold moves, and of each non-digit kind
    flagged. Right: share of all real digits kept (every kind the same) against each non-digit kind flagged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v, t = model.version, model.threshold
    grid = np.linspace(0, 1, 201)

    def kept(g: Group) -> np.ndarray:
        s = g.scores[v].digit_score
        return np.array([((s >= x).sum()) / max(g.n, 1) for x in grid])

    digits = [g for g in groups if g.role == "digits"]
    others = [g for g in groups if g.role != "digits"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(15, 6.5), layout="constrained")
    for g in digits:
        a.plot(grid, kept(g), lw=1, label=f"{g.name.removeprefix('digits: ')} (kept)")
    for g in others:
        a.plot(grid, 1 - kept(g), lw=1, ls="--", label=f"{g.name} (flagged)")
    a.axvline(t, color="k", lw=1)
    a.set_xlabel("threshold on digit_score")
    a.set_ylabel("share")
    a.set_title("real digits kept (solid), non-digits flagged (dashed); black: default threshold")
    a.legend(fontsize=6, ncol=2, loc="lower left")
    pooled_kept = np.mean([kept(g) for g in digits], axis=0)
    at = int(np.argmin(np.abs(grid - t)))
    for g in others:
        flagged = 1 - kept(g)
        line = b.plot(flagged, pooled_kept, lw=1, label=g.name)[0]
        b.plot(flagged[at], pooled_kept[at], "o", color=line.get_color())
    b.set_xlabel("share of this non-digit kind flagged")
    b.set_ylabel("share of real digits kept (mean over the digit kinds)")
    b.set_ylim(0.9, 1.001)
    b.set_xlim(0.5, 1.0)
    b.set_title(f"{v}: the trade-off per kind (dots: the default threshold {t:.3g})")
    b.legend(fontsize=6, loc="lower left")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def tables(results: dict[str, Any]) -> str:
    rows, others = results["rows"], results.get("compared", {})
    heads = "".join(f" flagged by `{v}` | AUROC `{v}` |" for v in others)
    lines = [f"| uploads | role | n | refused | flagged | AUROC vs MNIST test | digit accuracy |{heads}",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |" + " ---: | ---: |" * len(others)]  # fmt: skip
    for name, r in rows.items():
        area = r.get("auroc_vs_mnist")
        acc = r.get("accuracy")
        label = f"**{name}**" if name.endswith("together") else name
        more = ""
        for o in others.values():
            a = o["rows"][name].get("auroc_vs_mnist")
            more += f" {_pct(o['rows'][name]['flagged'])} | {'' if a is None else f'{a:.4f}'} |"
        lines.append(
            f"| {label} | {r['role']} | {r['n']:,} | {r['refused'] or ''} | {_pct(r['flagged'])} | "
            f"{'' if area is None else f'{area:.4f}'} | {_pct(acc)} |{more}"
        )
    by = results["flagged_by_char"]
    for title, chars in (("letters", SETS["letters"]), ("look-alike letters", SETS["look-alike letters"]),
                         ("symbols", SETS["symbols"]), ("brackets", SETS["brackets"]),
                         ("printed digits", SETS["printed digits"])):  # fmt: skip
        cells = ", ".join(f"`{c}` {_pct(by[c])}" for c in chars if c in by)
        lines.append(f"\nFlagged, {title} one by one (test fonts): {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model.onnx or its folder (default: the served model)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other models scored beside it")
    parser.add_argument("--n", type=int, default=500, help="non-digit uploads per harness kind (default: 500)")
    parser.add_argument("--per-kind", type=int, default=200, help="photo-like digits per rendering (default: 200)")
    parser.add_argument("--per-char", type=int, default=40, help="uploads per printed character (default: 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(data_dir()))
    parser.add_argument("--json", type=Path, default=REPO / "results" / "detector.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "digit-threshold.png")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)

    files = resolve(REPO / "models", path=args.model) if args.model else resolve(REPO / "models")
    model = ScoredModel(files)
    if model.threshold is None:
        raise SystemExit(f"{model.version} has no digit detector")
    t0 = time.time()
    groups = build_groups(args.n, args.per_kind, args.seed, Path(args.data_dir))
    groups += glyph_groups(args.per_char, args.seed, Path(args.data_dir))
    print(f"framed every upload ({time.time() - t0:.0f} s); scoring with {model.version}", flush=True)
    results = measure(groups, model)
    results["verdict"] = verdict(results)
    for path in args.compare:
        other = ScoredModel(resolve(REPO / "models", path=path))
        theirs = measure(groups, other)
        theirs["verdict"] = verdict(theirs)
        results.setdefault("compared", {})[other.version] = theirs
    command = "python -m benchmarks.bench_detector " + shlex.join(argv if argv is not None else sys.argv[1:])
    results.update(command=command.strip(), model=model.version, digit_detector=model.detector,
                   trained_kinds=list(TRAINED_KINDS))  # fmt: skip
    text = tables(results)
    print(text)
    v = results["verdict"]
    summary = (
        f"- worst real-digit kind: {v['worst_digit_kind']} {_pct(v['worst_digit_flagged'])} flagged "
        f"(target <= 2%: {', '.join(v['digit_kinds_over']) or 'every kind met'} over)\n"
        f"- held-out non-digits flagged: {_pct(v['held_out_flagged'])} together (target >= 95%), "
        f"AUROC vs MNIST test {v['held_out_auroc']:.4f} (target >= 0.995); kinds under 95%: "
        f"{', '.join(v['held_out_kinds_under']) or 'none'}"
    )
    print(summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    tradeoff_png(groups, model, args.png)
    wrote = [str(args.json), str(args.png)]
    if not args.no_write:
        section = (
            "## The detector on every kind of upload\n\n"
            f"`{results['command']}` on `{model.version}` at its threshold {model.threshold:.4g}: every upload "
            "framed by `service.images.frames.read_frames`, as `/predict` does; refused uploads (no ink) count "
            "as flagged. "
            "Held out: the harness's five held-out kinds plus letters and symbols in font families never trained "
            "on (`harness.glyph_uploads`). Look-alike letters are reported apart.\n\n"
            f"{summary}\n\n{text}\n\n![trade-off](docs/img/digit-threshold.png)\n"
        )
        write_section(args.write, START, END, section)
        wrote.append(str(args.write))
    print(f"wrote {', '.join(wrote)}")


if __name__ == "__main__":
    main()
