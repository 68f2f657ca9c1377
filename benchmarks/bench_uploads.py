"""Accuracy where users are: uploads through the service's own decode and framing, per kind.

    python -m benchmarks.bench_uploads                 # served and previously served mnist-cnn
    python -m benchmarks.bench_uploads --models models/<version> runs/x/export --no-write

For each model: the MNIST test set fed directly, harness.uploads renderings of MNIST test digits
(`--per-kind` each, seed 0: the everyday photo-like kinds, the hard ones and the scenes of
harness/scenes.py, whose note is the share the detector keeps, is_digit true), scikit-learn's
UCI digits (other writers, 8x8, upscaled to clean PNGs; never trained, selected or tuned on) and
MNIST test digits reduced to 8x8 the same way. Frames come from service.images.frames.read_frames,
exactly what /predict runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.report import write_section
from contract import read_served, resolve
from harness.mnist import load_mnist
from harness.uploads import HARD, PHOTO_LIKE, SCENES, mnist_as_8x8, png_8x8, sample_uploads
from service.images.frames import Budget, read_frames
from service.model import Classifier

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_uploads:start -->", "<!-- bench_uploads:end -->"
ACCEPTED = "an image"


def frames_of(blobs: list[bytes]) -> np.ndarray:
    """Each upload framed on its own, as one /predict request would: (N, 28, 28) float32."""
    budget = Budget(image_pixels=1 << 24, request_pixels=1 << 26, deadline=time.monotonic() + 3600)
    return np.concatenate([read_frames([b], budget, ACCEPTED) for b in blobs])


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # the dev extra; data inside the wheel

    d = load_digits()
    return d.images, d.target


def suites(per_kind: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (frames (N, 28, 28) float32, labels): everything a model is scored on."""
    images, labels = load_mnist(split="test")
    out = {"MNIST test (tensors)": (images.astype(np.float32) / 255.0, labels)}
    for kind in (*PHOTO_LIKE, *HARD, *SCENES):
        ups = list(sample_uploads(images, labels, (kind,), per_kind, seed=0))
        out[kind] = (frames_of([u.data for u in ups]), np.array([u.label for u in ups]))
    uci, uci_y = sklearn_digits()
    out["UCI digits (sklearn), 8x8 PNG"] = (frames_of([png_8x8(c) for c in uci]), uci_y)
    out["MNIST test as 8x8 PNG"] = (frames_of([png_8x8(mnist_as_8x8(d)) for d in images]), labels)
    return out


def per_class(pred: np.ndarray, y: np.ndarray) -> list[float]:
    return [float((pred[y == c] == c).mean()) for c in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", type=Path, help="model folders (default: served + previous)")
    parser.add_argument("--per-kind", type=int, default=200, help="uploads per rendering kind (default: 200)")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    models_dir = REPO / "models"
    if args.models:
        paths = args.models
    else:
        served = read_served(models_dir)
        paths = [models_dir / v for v in [*served.history[:1][::-1], served.served]]
    clfs = {p: Classifier(resolve(models_dir, path=p), "cpu", 2) for p in paths}
    names = [c.version for c in clfs.values()]
    print("framing uploads ...", flush=True)
    data = suites(args.per_kind)
    rows = ["| uploads | n | " + " | ".join(f"`{n}`" for n in names) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]  # fmt: skip
    hard_hits: dict[str, list[np.ndarray]] = {n: [] for n in names}
    photo_hits: dict[str, list[np.ndarray]] = {n: [] for n in names}
    scene_hits: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for suite, (x, y) in data.items():
        cells = []
        for clf in clfs.values():
            out = clf.run(x)
            pred = out.probabilities.argmax(1)
            hits = pred == y
            if suite in SCENES:
                scene_hits[clf.version].append(hits)
            if suite in PHOTO_LIKE or suite in HARD:
                photo_hits[clf.version].append(hits)
            if suite in HARD:
                hard_hits[clf.version].append(hits)
            note = ""
            if suite.startswith("UCI"):
                rec = per_class(pred, y)
                note = f" (1s {100 * rec[1]:.0f}%, 4s {100 * rec[4]:.0f}%)"
            elif suite in SCENES and out.is_digit is not None:
                note = f" (is_digit {100 * out.is_digit.mean():.1f}%)"
            cells.append(f"{100 * hits.mean():.2f}%{note}")
        rows.append(f"| {suite} | {len(y):,} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    pools = (
        ("hard kinds together", hard_hits),
        ("all photo-like kinds together", photo_hits),
        ("scene kinds together", scene_hits),
    )
    for label, pool in pools:
        n = sum(len(h) for h in next(iter(pool.values())))
        rows.append(
            f"| **{label}** | {n:,} | "
            + " | ".join(f"**{100 * np.concatenate(pool[v]).mean():.2f}%**" for v in names)
            + " |"
        )
    table = "\n".join(rows)
    print(table)
    if args.no_write:
        return
    body = (
        "## Models: accuracy on uploads\n\n"
        f"`python -m benchmarks.bench_uploads` (`--per-kind {args.per_kind}`, seed 0): every upload decoded and "
        "framed by `service.images.frames.read_frames`, as `/predict` does. Kinds are `harness.uploads` renderings of "
        "MNIST test digits (the scene kinds: photos of a sheet on a table, shadows, ruled paper, form boxes, a "
        "whiteboard; the note is the share kept as digits, `is_digit` true); the UCI digits (scikit-learn's "
        "`load_digits`, 1,797 digits by other writers) are a test only, never used to train, select or tune. "
        "A version not in `models/` is a candidate that was not shipped.\n\n"
        f"{table}\n"
    )
    write_section(args.write, START, END, body)
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
