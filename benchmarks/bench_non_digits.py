"""Does the model know when an upload is not a digit? The detector's targets, through /predict's own path.

    python -m benchmarks.bench_non_digits                        # the served model
    python -m benchmarks.bench_non_digits --model runs/detector/model/model.onnx --n 100 --no-write

Every upload is decoded and framed by service.images.frames.read_frames, as /predict does; the graph
is run with onnxruntime and its digit_score read by the name metadata.json gives it. A frame is
flagged when digit_score < the threshold in metadata (fitted on validation, not here). Measured:

- digits that must stay digits: the 10,000 MNIST test digits (as tensors: a 28x28 upload is
  used as is), scikit-learn's 1,797 UCI digits (8x8 upscaled, harness.uploads.png_8x8) and
  harness.uploads' photo-like renderings of MNIST test digits (`--per-kind` each);
- non-digits, `--n` of each harness.non_digits kind: four kinds like those the detector was
  trained on (other images) and five it never saw (held out: the honest measure);
- the classifier's own confidence (top probability) as the baseline detector, at the level that
  keeps 99% of MNIST test digits (fitted on the test set itself, which favours the baseline),
  for this model and the one it is compared with (`--compare`, default the served model, or the
  previously served one when this is the served model).

An upload that framing refuses (422, no ink: a flat crop of sky, a smooth gradient) gets no digit
and counts as flagged; the refusals are counted in their own column. AUROCs are over answered
uploads. Writes results/non_digits.json, benchmarks/non_digits.png and BENCHMARKS.md's section.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.report import write_section
from contract import ModelFiles, read_metadata, read_served, resolve
from harness.detector import Scored, ScoredModel
from harness.mnist import data_dir, load_mnist
from harness.non_digits import HELD_OUT_KINDS, KINDS, TRAINED_KINDS, iter_non_digits
from harness.uploads import HARD, PHOTO_LIKE, png_8x8, sample_uploads
from service.errors import BadInput
from service.images.frames import Budget, read_frames

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_non_digits:start -->", "<!-- bench_non_digits:end -->"
ACCEPTED = "an image"
KEEP, FLAG, AUROC = 0.99, 0.90, 0.99  # keep 99% of test digits, flag 90% of held-out kinds, AUROC 0.99
MNIST = "MNIST test digits"
UCI = "UCI digits (sklearn), 8x8 PNG"
PHOTO = "photo-like digits (everyday kinds)"
HARD_ROW = "photo-like digits (hard kinds)"
DRAWN = ("letters", "two-digit", "scribbles", "symbols", "three-digit", "shapes")
RENDERED_AS = ("clean upload", "28x28 frame", "photo-like", "hard photo-like")


def rendered_as(rendering: str) -> str:
    """A non-digit's rendering, grouped: how its upload was made (textures and photos keep their own)."""
    named = {"clean": "clean upload", "frame28": "28x28 frame"}
    if rendering in HARD:
        return "hard photo-like"
    return named.get(rendering) or ("photo-like" if rendering in PHOTO_LIKE else rendering)


@dataclass
class Group:
    """One set of uploads: the frames the service made of them, and how many it refused."""

    name: str
    role: str  # "digits", "trained" or "held-out"
    frames: np.ndarray  # (M, 28, 28) float32: the answered uploads
    refused: int = 0
    labels: np.ndarray | None = None  # (M,) for digits
    made: np.ndarray | None = None  # (M,) for non-digits: how each upload was made (RENDERED_AS)
    scores: dict[str, Scored] = field(default_factory=dict)  # model version -> its answers

    @property
    def n(self) -> int:
        return len(self.frames) + self.refused


def frame_each(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each upload framed on its own, as one /predict request: (M, 28, 28) float32, and (N,) answered."""
    budget = Budget(image_pixels=1 << 24, request_pixels=1 << 26, deadline=time.monotonic() + 3600)
    frames, answered = [], np.zeros(len(blobs), bool)
    for i, blob in enumerate(blobs):
        try:
            frames.append(read_frames([blob], budget, ACCEPTED))
            answered[i] = True
        except BadInput:  # a 4xx: no ink, mostly
            pass
    return (np.concatenate(frames) if frames else np.zeros((0, 28, 28), np.float32)), answered


def build_groups(n: int, per_kind: int, seed: int, mnist_dir: Path) -> list[Group]:
    """Every set of uploads the models are scored on, framed once."""
    images, labels = load_mnist(mnist_dir, "test")
    groups = [Group(MNIST, "digits", images.astype(np.float32) / 255.0, labels=labels)]
    from sklearn.datasets import load_digits  # the dev extra; data inside the wheel

    uci = load_digits()
    todo: list[tuple[str, str, list[bytes], np.ndarray]] = [
        (UCI, "digits", [png_8x8(c) for c in uci.images], uci.target)
    ]
    ups = list(sample_uploads(images, labels, (*PHOTO_LIKE, *HARD), per_kind, seed=seed))  # other digits per kind
    for kind in (*PHOTO_LIKE, *HARD):
        mine = [u for u in ups if u.kind == kind]
        todo.append((f"digits: {kind}", "digits", [u.data for u in mine], np.array([u.label for u in mine])))
    for kind in KINDS:
        role = "trained" if kind in TRAINED_KINDS else "held-out"
        nds = list(iter_non_digits((kind,), n, seed, mnist_dir))
        made = np.array([rendered_as(u.rendering) for u in nds])
        todo.append((kind, role, [u.data for u in nds], made))
    for name, role, blobs, tags in todo:
        t0 = time.perf_counter()
        frames, answered = frame_each(blobs)
        group = Group(name, role, frames, int((~answered).sum()))
        if tags is not None and role == "digits":
            group.labels = tags[answered]
        elif tags is not None:
            group.made = tags[answered]
        groups.append(group)
        print(f"  framed {len(blobs):5d} {name:<36} {time.perf_counter() - t0:5.1f} s, {(~answered).sum()} refused")
    return groups


def auroc(digits: np.ndarray, others: np.ndarray) -> float | None:
    """AUROC of a score that should be high for digits and low for the others."""
    if not len(digits) or not len(others):
        return None
    y = np.r_[np.ones(len(digits)), np.zeros(len(others))]
    return float(roc_auc_score(y, np.r_[digits, others]))


def pooled(groups: list[Group], version: str, which: str) -> np.ndarray:
    """One score ('digit_score' or 'confidence') of one model over several groups, concatenated."""
    parts = [getattr(g.scores[version], which) for g in groups]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def measure(groups: list[Group], models: list[ScoredModel]) -> dict[str, Any]:
    """Per group and pooled: share flagged by each detector, AUROC against MNIST, digit accuracy."""
    for g in groups:
        for m in models:
            g.scores[m.version] = m(g.frames)
    mnist = groups[0]
    # name -> (model, score, threshold): the detector at its fitted threshold, each model's confidence at 99%
    detectors: dict[str, tuple[str, str, float]] = {}
    main = models[0]
    if main.threshold is not None:
        detectors["digit_score"] = (main.version, "digit_score", main.threshold)
    for m in models:
        conf = mnist.scores[m.version].confidence
        detectors[f"confidence {m.version}"] = (m.version, "confidence", float(np.quantile(conf, 1 - KEEP)))
    by_role = {role: [g for g in groups if g.role == role] for role in ("trained", "held-out")}
    sets: list[tuple[str, str, list[Group]]] = [(g.name, g.role, [g]) for g in groups]
    photo = [g for g in groups if g.name.removeprefix("digits: ") in PHOTO_LIKE]
    hard = [g for g in groups if g.name.removeprefix("digits: ") in HARD]
    sets += [(PHOTO, "digits", photo), (HARD_ROW, "digits", hard)]
    sets += [("held-out kinds together", "held-out", by_role["held-out"])]
    sets += [("trained kinds together", "trained", by_role["trained"])]
    rows: dict[str, Any] = {}
    for name, role, members in sets:
        n = sum(g.n for g in members)
        refused = sum(g.refused for g in members)
        row: dict[str, Any] = {"role": role, "n": n, "refused": refused, "flagged": {}, "auroc_vs_mnist": {}}
        row["flagged_of_answered"] = {}
        for det, (version, which, threshold) in detectors.items():
            score = pooled(members, version, which)
            row["flagged"][det] = (int((score < threshold).sum()) + refused) / max(n, 1)
            row["flagged_of_answered"][det] = float((score < threshold).mean()) if len(score) else None
            if role != "digits":
                row["auroc_vs_mnist"][det] = auroc(getattr(mnist.scores[version], which), score)
        if role == "digits":
            labels = np.concatenate([g.labels for g in members if g.labels is not None])
            row["accuracy"] = {
                m.version: float((pooled(members, m.version, "probabilities").argmax(1) == labels).sum() / max(n, 1))
                for m in models
            }
        made, score = members[0].made, members[0].scores[main.version].digit_score
        if len(members) == 1 and made is not None and score is not None and main.threshold is not None:
            flagged = score < main.threshold  # of the answered uploads made each way
            row["flagged_by_rendering"] = {str(how): float(flagged[made == how].mean()) for how in np.unique(made)}
        rows[name] = row
    return {
        "detectors": {k: {"model": v[0], "score": v[1], "threshold": v[2]} for k, v in detectors.items()},
        "rows": rows,
    }


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The detector's targets (KEEP, FLAG, AUROC) at its fitted threshold."""
    rows = results["rows"]
    if "digit_score" not in results["detectors"]:
        return {"detector": False}
    kept = 1 - rows[MNIST]["flagged"]["digit_score"]
    held = rows["held-out kinds together"]
    flagged, area = held["flagged"]["digit_score"], held["auroc_vs_mnist"]["digit_score"]
    return {
        "detector": True,
        "mnist_kept": kept,
        "held_out_flagged": flagged,
        "held_out_refused": held["refused"],
        "held_out_flagged_of_answered": held["flagged_of_answered"]["digit_score"],
        "held_out_auroc": area,
        "trained_auroc": rows["trained kinds together"]["auroc_vs_mnist"]["digit_score"],
        "met": {"keep": kept >= KEEP, "flag": flagged >= FLAG, "auroc": area is not None and area >= AUROC},
    }


def _pct(x: float | None, decimals: int = 1) -> str:
    return "" if x is None else f"{100 * x:.{decimals}f}%"


def _auc(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def table(results: dict[str, Any], groups: list[Group]) -> str:
    """Markdown: one row per kind, then the pooled rows; flagged shares and AUROCs per detector."""
    dets = list(results["detectors"])
    heads = [f"`{d}`" if d == "digit_score" else f"confidence `{d.split(' ', 1)[1]}`" for d in dets]
    lines = [
        "| uploads | n | refused | "
        + " | ".join(f"flagged: {h}" for h in heads)
        + " | "
        + " | ".join(f"AUROC vs MNIST: {h}" for h in heads)
        + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in range(2 * len(dets))) + " |",
    ]
    order = [MNIST, UCI, PHOTO, HARD_ROW, *TRAINED_KINDS, "trained kinds together", *HELD_OUT_KINDS]
    order += ["held-out kinds together"]
    for name in order:
        row = results["rows"][name]
        label = {"trained": f"{name} (trained kind)", "held-out": f"{name} (held out)"}.get(row["role"], name)
        if name.endswith("together"):
            label = f"**{name}**"
        cells = [_pct(row["flagged"][d]) for d in dets] + [_auc(row["auroc_vs_mnist"].get(d)) for d in dets]
        lines.append(f"| {label} | {row['n']:,} | {row['refused'] or ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_table(results: dict[str, Any], versions: list[str]) -> str:
    lines = ["| digits | n | " + " | ".join(f"`{v}`" for v in versions) + " |"]
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in versions) + " |")
    for name in (MNIST, UCI, PHOTO, HARD_ROW):
        row = results["rows"][name]
        lines.append(f"| {name} | {row['n']:,} | " + " | ".join(_pct(row["accuracy"][v], 2) for v in versions) + " |")
    return "\n".join(lines)


def rendering_table(results: dict[str, Any]) -> str:
    """Markdown: the detector's flagged share per drawn kind, by how the upload was made."""
    rows = results["rows"]
    if "flagged_by_rendering" not in rows[DRAWN[0]]:
        return ""
    lines = [
        "| drawn kind | " + " | ".join(RENDERED_AS) + " |",
        "| --- | " + " | ".join("---:" for _ in RENDERED_AS) + " |",
    ]
    for kind in DRAWN:
        by = rows[kind]["flagged_by_rendering"]
        lines.append(f"| {kind} | " + " | ".join(_pct(by.get(how)) for how in RENDERED_AS) + " |")
    for kind in ("textures", "photos", "photo-crops"):
        by = rows[kind]["flagged_by_rendering"]
        lines.append(f"\n{kind}: " + ", ".join(f"{how} {_pct(v)}" for how, v in sorted(by.items())))
    return "\n".join(lines)


def plot(results: dict[str, Any], groups: list[Group], version: str, out: Path, per_row: int = 8) -> None:
    """Score histograms (MNIST digits vs each held-out kind) and example frames flagged / not flagged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    det = "digit_score" if "digit_score" in results["detectors"] else f"confidence {version}"
    spec = results["detectors"][det]
    which, threshold = spec["score"], spec["threshold"]
    by_name = {g.name: g for g in groups}
    panels = [*HELD_OUT_KINDS, "trained kinds", "other digits"]
    fig = plt.figure(figsize=(20, 13), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.15])
    axes = left.subplots(4, 2, sharex=True).ravel()
    axes[-1].axis("off")
    bins = np.linspace(0, 1, 41)
    digits = getattr(by_name[MNIST].scores[version], which)
    for ax, name in zip(axes, panels, strict=False):
        if name == "trained kinds":
            members = [by_name[k] for k in TRAINED_KINDS]
        elif name == "other digits":
            members = [g for g in groups if g.role == "digits" and g.name != MNIST]
        else:
            members = [by_name[name]]
        other = pooled(members, version, which)
        ax.hist(digits, bins, density=True, alpha=0.6, color="tab:blue", label="MNIST test digits")
        colour = "tab:green" if name == "other digits" else "tab:red"
        ax.hist(other, bins, density=True, alpha=0.6, color=colour, label=name)
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{name} (n={len(other):,})", fontsize=9)
        ax.set_xlabel(which)
        ax.legend(fontsize=7, loc="upper center")
    left.suptitle(f"{version}: {which} of each upload's frame (density, log); dashed: threshold {threshold:.3g}")
    rows = [*KINDS, UCI, *(g.name for g in groups if g.name.startswith("digits: "))]
    mosaic = np.ones((len(rows) * 30, (2 * per_row + 1) * 30), np.float32) * 0.5
    for r, name in enumerate(rows):
        g = by_name[name]
        score = getattr(g.scores[version], which)
        order = np.argsort(score)  # flagged from the lowest score up, kept from the highest down
        flagged, kept = order[score[order] < threshold][:per_row], order[score[order] >= threshold][::-1][:per_row]
        for c, i in enumerate(flagged):
            mosaic[r * 30 + 1 : r * 30 + 29, c * 30 + 1 : c * 30 + 29] = g.frames[i]
        for c, i in enumerate(kept):
            x = (per_row + 1 + c) * 30
            mosaic[r * 30 + 1 : r * 30 + 29, x + 1 : x + 29] = g.frames[i]
    ax = right.subplots()
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks(
        np.arange(len(rows)) * 30 + 14,
        [r.removeprefix("digits: ") + (" (digit)" if r.startswith("digits: ") else "") for r in rows],
        fontsize=8,
    )
    ax.set_xticks(
        [per_row * 15, (per_row + 1) * 30 + per_row * 15],
        [f"flagged ({which} < threshold), lowest first", "not flagged, highest first"],
    )
    ax.tick_params(length=0)
    right.suptitle("frames as the model sees them (grey: none of that outcome)")
    fig.savefig(out, dpi=80)
    plt.close(fig)


def served_and_previous(models_dir: Path, model: Path | None) -> tuple[ModelFiles, ModelFiles | None]:
    """The model to measure (default: served) and the one to compare with (served, or the one before)."""
    served = read_served(models_dir)
    files = resolve(models_dir, path=model) if model else resolve(models_dir)
    if read_metadata(files).version != served.served:  # a candidate, wherever its folder is
        return files, resolve(models_dir)
    return files, resolve(models_dir, served.history[0]) if served.history else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model.onnx or its folder (default: the served model)")
    parser.add_argument(
        "--compare", type=Path, help="model whose confidence and accuracy sit beside (default: served or previous)"
    )
    parser.add_argument("--no-compare", action="store_true", help="measure the one model alone")
    parser.add_argument("--n", type=int, default=500, help="non-digit uploads per kind (default: 500)")
    parser.add_argument("--per-kind", type=int, default=200, help="photo-like digits per rendering (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="renderings (default: 0)")
    parser.add_argument("--data-dir", default=str(data_dir()), help="folder holding MNIST/raw (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=REPO / "results" / "non_digits.json")
    parser.add_argument("--png", type=Path, default=REPO / "benchmarks" / "non_digits.png")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)

    files, other = served_and_previous(REPO / "models", args.model)
    if args.compare:
        other = resolve(REPO / "models", path=args.compare)
    models = [ScoredModel(files)] + ([ScoredModel(other)] if other is not None and not args.no_compare else [])
    main_model = models[0]
    if main_model.threshold is None:
        print(f"{main_model.version} has no digit detector: only the confidence baseline is measured")
    print(f"framing uploads (seed {args.seed}: {args.n} per non-digit kind, {args.per_kind} per photo-like kind) ...")
    groups = build_groups(args.n, args.per_kind, args.seed, Path(args.data_dir))
    print(f"scoring with {', '.join(m.version for m in models)} ...", flush=True)
    results = measure(groups, models)
    results["verdict"] = verdict(results)
    versions = [m.version for m in models]
    command = "python -m benchmarks.bench_non_digits " + shlex.join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    results.update(
        command=command.strip(),
        model=main_model.version,
        compared_with=versions[1:],
        digit_detector=main_model.detector,
        recorded_accuracy={m.version: m.test_accuracy for m in models},
        n_per_kind=args.n,
        per_photo_kind=args.per_kind,
        seed=args.seed,
    )
    kinds_table, acc_table = table(results, groups), accuracy_table(results, versions)
    made_table = rendering_table(results)
    print(kinds_table, made_table, acc_table, sep="\n\n")
    lines = summary_lines(results)
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, groups, main_model.version, args.png)
    wrote = [str(args.json), str(args.png)]
    if not args.no_write:
        write_section(args.write, START, END, section(results, kinds_table, made_table, acc_table, lines))
        wrote.append(str(args.write))
    print(f"wrote {', '.join(wrote)}")


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The detector's targets, met or not, in words."""
    v = results["verdict"]
    if not v["detector"]:
        return [f"- `{results['model']}` has no digit detector: the table is the confidence baseline alone."]
    t = results["digit_detector"]["threshold"]
    ok = {k: "met" if met else "**missed**" for k, met in v["met"].items()}
    return [
        f"- MNIST test digits kept at the threshold {t:.4g}: {_pct(v['mnist_kept'], 2)} (target >= 99%: {ok['keep']})",
        f"- held-out non-digits flagged: {_pct(v['held_out_flagged'], 2)} together (target >= 90%: {ok['flag']}); "
        f"{v['held_out_refused']} of them refused by framing, {_pct(v['held_out_flagged_of_answered'], 2)} of the "
        "answered ones flagged",
        f"- AUROC, MNIST test digits vs held-out kinds: {_auc(v['held_out_auroc'])} (target >= 0.99: {ok['auroc']}); "
        f"vs trained kinds: {_auc(v['trained_auroc'])}",
    ]


def section(results: dict[str, Any], kinds_table: str, made_table: str, acc_table: str, lines: list[str]) -> str:
    det = results["digit_detector"] or {}
    fitted = f" (threshold fitted on {det['fitted_on']})" if det.get("fitted_on") else ""
    if not (REPO / "models" / results["model"]).is_dir():
        fitted += ", a candidate not in `models/`"
    return (
        "## Non-digits: does the model say when an upload is not a digit?\n\n"
        f"`{results['command']}` on `{results['model']}`{fitted}: every upload decoded and framed by "
        "`service.images.frames.read_frames`, as `/predict` does, and flagged when the graph's `digit_score` is under "
        "metadata's threshold. Non-digits are `harness.non_digits` renderings (seed "
        f"{results['seed']}, {results['n_per_kind']:,} per kind): the detector was trained on other images of the "
        "trained kinds and never saw the held-out ones. Beside it, the classifier's confidence (top probability) "
        "as a detector, at the level that keeps 99% of MNIST test digits (fitted on the test set, which favours "
        "it). Refused: framing found no ink (422); those count as flagged.\n\n"
        + "\n".join(lines)
        + f"\n\n{kinds_table}\n\n"
        + (
            "The detector's flagged share of each kind by how the upload was made (clean: dark ink on paper, "
            "64-400 px, framed by the service; 28x28 frame: already framed, as MNIST stores a digit; photo-like "
            f"and hard: `harness.uploads` renderings of the 28x28 frame):\n\n{made_table}\n\n"
            if made_table
            else ""
        )
        + f"Digit accuracy (a refused or wrongly read digit counts as wrong):\n\n{acc_table}\n\n"
        "![score histograms and example frames](benchmarks/non_digits.png)\n"
    )


if __name__ == "__main__":
    main()
