"""Reading handwritten numbers: contract.number on strings of MNIST digits rendered as uploads.

    python -m benchmarks.bench_numbers                    # test digits, written to BENCHMARKS.md
    python -m benchmarks.bench_numbers --split validation --no-write   # what parameters are chosen on

The served model (models/served.json) runs in-process on onnxruntime, one thread. Per kind of
harness.numbers (strings of 2-8 digits): the share of strings read exactly, the share of digits
read right, and what perfect segmentation would give: the share of strings whose digits the
model reads right as MNIST's own 28x28 tensors, and the product of per-digit accuracies
(MNIST accuracy to the power of each string's length). Then spaced 4-digit strings, touching and
overlapping strings of 3, single digits through the number reader against the single-digit path
(contract.photo.to_frame, what /predict frames), and the cost of a 4-digit photo against one
single-digit framing and inference of the same photo. Timings: run under `flock /tmp/timing.lock`.
"""

from __future__ import annotations

import argparse
import difflib
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from benchmarks.report import write_section
from contract import photo
from contract.number import Classify, read_number
from harness.mnist import load_mnist
from harness.numbers import KINDS, NumberUpload, sample_numbers, served_reader
from harness.uploads import PHOTO_LIKE, SCENES, sample_uploads

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_numbers:start -->", "<!-- bench_numbers:end -->"


def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test digits, or the 6,000 validation digits of split_seed 0 (training's split)."""
    if split == "test":
        return load_mnist(split="test")
    import torch  # the validation split is training's, drawn with torch's generator

    from training.data import train_val_split

    x, y = load_mnist(split="train")
    s = train_val_split(torch.from_numpy(x.copy()), torch.from_numpy(y), 6000, 0)
    return s.val_x.numpy(), s.val_y.numpy()


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return ImageOps.exif_transpose(img)  # upright, as the service decodes it


def read_all(uploads: list[NumberUpload], classify: Classify, threshold: float) -> list[tuple[str, bool]]:
    """Each upload's digits read (argmax, '?' never), and whether every part was a digit."""
    out = []
    for u in uploads:
        try:
            r = read_number(decoded(u.data), classify, threshold)
            out.append(("".join(str(d.digit) for d in r.digits), all(d.is_digit for d in r.digits)))
        except ValueError as exc:  # NoInk, TooManyDigits
            out.append((f"error: {exc}", False))
    return out


def score(
    uploads: list[NumberUpload], reads: list[tuple[str, bool]], right: np.ndarray, accuracy: float
) -> dict[str, float]:
    """String and digit accuracy, and what perfect segmentation would give."""
    strings = np.mean([r == u.label for u, (r, _) in zip(uploads, reads, strict=True)])
    matched = sum(  # a digit read that is not there counts against, as one missed does
        sum(b.size for b in difflib.SequenceMatcher(None, r, u.label).get_matching_blocks())
        * len(u.label)
        / max(len(r), len(u.label))
        for u, (r, _) in zip(uploads, reads, strict=True)
    )
    return {
        "n": len(uploads),
        "string": float(strings),
        "digit": matched / sum(len(u.label) for u in uploads),
        "oracle": float(np.mean([right[list(u.indices)].all() for u in uploads])),
        "product": float(np.mean([accuracy ** len(u.label) for u in uploads])),
        "is_digit": float(np.mean([ok for _, ok in reads])),
    }


def singles(
    images: np.ndarray, labels: np.ndarray, per_kind: int, classify: Classify, threshold: float
) -> tuple[int, int, int]:
    """Single-digit uploads: (n, read alike by both paths, right by the number reader)."""
    n = same = right = 0
    for u in sample_uploads(images, labels, (*PHOTO_LIKE, *SCENES), per_kind, seed=0):
        img = decoded(u.data)
        probs, _ = classify(photo.to_frame(img)[None])
        r = read_number(img, classify, threshold)
        n += 1
        same += r.number.replace("?", "") == str(int(probs.argmax())) and len(r.digits) == 1
        right += "".join(str(d.digit) for d in r.digits) == str(u.label)
    return n, same, right


def cost(images: np.ndarray, labels: np.ndarray, classify: Classify, threshold: float, n: int) -> tuple[float, float]:
    """Median ms: a 4-digit photo read as a number, and the same photo framed and classified once."""
    ups = list(sample_numbers(images, labels, ("spaced",), n, lengths=(4, 4), seed=11))
    number, single = [], []
    for u in ups * 3:
        t0 = time.perf_counter()
        read_number(decoded(u.data), classify, threshold)
        t1 = time.perf_counter()
        classify(photo.to_frame(decoded(u.data))[None])
        t2 = time.perf_counter()
        number.append(t1 - t0)
        single.append(t2 - t1)
    return 1000 * float(np.median(number)), 1000 * float(np.median(single))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=100, help="strings per kind (default: 100)")
    parser.add_argument("--split", choices=("test", "validation"), default="test", help="digits (default: test)")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed (default: 0)")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    classify, threshold = served_reader(REPO / "models")
    images, labels = digits(args.split)
    right = classify(images.astype(np.float32) / 255.0)[0].argmax(1) == labels  # (N,) MNIST tensors
    accuracy = float(right.mean())
    rows = [
        "| kind | strings | read exactly | digits right | perfect segmentation | product of per-digit "
        "| all `is_digit` |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(name: str, s: dict[str, float]) -> None:
        rows.append(
            f"| {name} | {s['n']:.0f} | {100 * s['string']:.1f}% | {100 * s['digit']:.1f}% | "
            f"{100 * s['oracle']:.1f}% | {100 * s['product']:.1f}% | {100 * s['is_digit']:.0f}% |"
        )
        print(rows[-1], flush=True)

    for kind in KINDS:
        ups = list(sample_numbers(images, labels, (kind,), args.per_kind, seed=args.seed))
        row(f"{kind}, 2-8 digits", score(ups, read_all(ups, classify, threshold), right, accuracy))
    ups = list(sample_numbers(images, labels, ("spaced",), 2 * args.per_kind, lengths=(4, 4), seed=args.seed + 1))
    row("**spaced, 4 digits**", score(ups, read_all(ups, classify, threshold), right, accuracy))
    for kind in ("touching", "overlapping"):
        ups = list(sample_numbers(images, labels, (kind,), 2 * args.per_kind, lengths=(3, 3), seed=args.seed + 2))
        row(f"**{kind}, 3 digits**", score(ups, read_all(ups, classify, threshold), right, accuracy))
    n, same, single_right = singles(images, labels, max(1, args.per_kind // 5), classify, threshold)
    ms_number, ms_single = cost(images, labels, classify, threshold, 20)
    table = "\n".join(rows)
    lines = [
        f"Single digits ({n} uploads: {len(PHOTO_LIKE)} photo-like kinds and {len(SCENES)} scene kinds): the number "
        f"reader and the single-digit path read {same} of {n} alike; {single_right} read right.",
        f"Cost (median of 60 runs, one core, decode included): a 4-digit photo read as a number {ms_number:.1f} ms, "
        f"the same photo framed and classified once {ms_single:.1f} ms: {ms_number / ms_single:.2f}x.",
    ]
    print(table)
    print("\n".join(lines))
    if args.no_write:
        return
    body = (
        "## Numbers: strings of handwritten digits\n\n"
        f"`flock /tmp/timing.lock python -m benchmarks.bench_numbers` (`--per-kind {args.per_kind}`, seed "
        f"{args.seed}, {args.split} digits): `contract.number.read_number` with the served model in-process on "
        "onnxruntime. *Perfect segmentation*: the share of strings whose digits the model reads right as MNIST's "
        f"28x28 tensors; *product of per-digit*: MNIST accuracy ({100 * accuracy:.2f}%) to the power of each "
        "string's length. How the reader works and how it compares: docs/numbers.md.\n\n"
        f"{table}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    )
    write_section(args.write, START, END, body)
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
