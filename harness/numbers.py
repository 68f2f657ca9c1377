"""Handwritten numbers: strings of 2-8 MNIST digits rendered as the uploads people send.

Digits spaced apart, touching, overlapping, broken into pieces, slanted, with a dot or a comma
between groups, in a row of form boxes, and in the scenes of harness/scenes.py (a sheet on a
table, a shadow, ruled paper, a whiteboard...). A string is first drawn as one strip of ink, 28
rows high like an MNIST frame and as wide as its digits; the photo kinds then put it on paper.
Every parameter is drawn from a wide range. The caller picks the digits: validation digits for
choosing, test digits for reporting. numpy + Pillow only, like the rest of the harness.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.scenes import SCENES as _SCENES
from harness.scenes import _finish, _paint, _paper, _pen, _rect, render_scene

# The strip on plain paper, photographed: how the digits sit beside each other.
PLAIN: tuple[str, ...] = (
    "spaced",  # apart, gaps of 0.15-0.6 of a digit's height
    "touching",  # some neighbours' strokes just touch
    "overlapping",  # some neighbours' strokes cross by 2-5 px of 20
    "broken",  # strokes broken by a gap (a pen that skipped): a digit in pieces
    "slanted",  # the whole string sheared by 12-25 degrees, spaced
    "dotted",  # a dot or a comma between groups ("1.234", "12,345"), not part of the number
)
BOXES = "boxes"  # a row of printed form boxes, one digit in each
# The scenes of harness/scenes.py that fit a string (the single-box kinds do not).
SCENES: tuple[str, ...] = tuple(k for k in _SCENES if k not in ("scene_form_box", "scene_box_row"))
KINDS: tuple[str, ...] = (*PLAIN, BOXES, *SCENES)

INK = 30  # of 255: what counts as a digit's ink when cropping and measuring


@dataclass(frozen=True)
class NumberUpload:
    """One rendered number: what a client would POST and what it must read."""

    data: bytes
    content_type: str
    label: str  # the digits, left to right: "407"
    kind: str
    indices: tuple[int, ...]  # the digits' positions in the MNIST split


def _columns(digit: np.ndarray) -> np.ndarray:
    """A 28x28 digit cut to the columns that hold its ink: (28, w) uint8."""
    cols = np.flatnonzero((digit > INK).any(0))
    if cols.size == 0:
        raise ValueError("a digit of a number needs ink")
    return digit[:, cols[0] : cols[-1] + 1]


def _offset(left: np.ndarray, right: np.ndarray, distance: int) -> int:
    """Where `right` starts (in `left`'s columns) so that their nearest strokes in a shared row are
    `distance` px apart: 0 touch, negative cross. Rows that only one holds do not count."""
    lmask, rmask = left > INK, right > INK
    both = lmask.any(1) & rmask.any(1)
    last = np.where(lmask.any(1), left.shape[1] - 1 - np.argmax(lmask[:, ::-1], axis=1), -1)
    first = np.where(rmask.any(1), np.argmax(rmask, axis=1), right.shape[1])
    # in a shared row the gap is offset + first - last - 1
    need = int(np.max(last[both] - first[both])) + 1 if both.any() else left.shape[1]
    return need + distance


def _dot(comma: bool, rng: np.random.Generator) -> np.ndarray:
    """A dot or a comma on the baseline, as a (28, w) strip."""
    r = float(rng.uniform(1.2, 2.0))
    w = int(2 * r + 4)
    img = Image.new("L", (w, 28), 0)
    draw = ImageDraw.Draw(img)
    cy, cx = float(rng.uniform(21.5, 23.5)), w / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    if comma:
        draw.line([(cx + r * 0.6, cy), (cx - r, cy + 3.5)], fill=255, width=max(1, round(r)))
    return np.asarray(img, np.uint8)


def strip(digits: Sequence[np.ndarray], kind: str, rng: np.random.Generator) -> np.ndarray:
    """The string's ink, white on black: (28, W) uint8, the digits side by side as `kind` says."""
    pieces = [_columns(d) for d in digits]
    if kind == "broken":  # a gap of 1-2 rows across the strokes of most digits
        broken = []
        for k, p in enumerate(pieces):
            if k == 0 or rng.random() < 0.7:
                p = p.copy()
                rows = np.flatnonzero((p > INK).any(1))
                at = int(rng.integers(rows[0] + 4, max(rows[0] + 5, rows[-1] - 4)))
                p[at : at + int(rng.integers(1, 3))] = 0
            broken.append(p)
        pieces = broken
    touch = {k: True for k in range(len(pieces) - 1)}
    if kind in ("touching", "overlapping"):  # some pairs, at least one
        touch = {k: bool(rng.random() < 0.5) for k in range(len(pieces) - 1)}
        touch[int(rng.integers(len(pieces) - 1))] = True
    comma_at = int(rng.integers(1, len(pieces))) if kind == "dotted" else -1
    out = pieces[0].astype(np.float32)
    for k, p in enumerate(pieces[1:]):
        if k + 1 == comma_at:
            dot = _dot(bool(rng.random() < 0.5), rng)
            out = _join(out, dot, out.shape[1] + int(rng.integers(1, 4)))
        if kind == "touching" and touch[k]:
            at = _offset(out, p, int(rng.integers(-1, 1)))
        elif kind == "overlapping" and touch[k]:
            at = _offset(out, p, -int(rng.integers(2, 6)))
        else:
            low, high = (3, 12) if kind != "slanted" else (5, 12)
            at = out.shape[1] + int(rng.integers(low, high + 1))
        out = _join(out, p, max(at, out.shape[1] - p.shape[1] + 1, 1))  # still the rightmost digit
    if kind == "slanted":
        out = _shear(out, float(np.tan(np.radians(rng.uniform(12, 25)))) * (1 if rng.random() < 0.5 else -1))
    return np.clip(out, 0, 255).astype(np.uint8)


def _join(left: np.ndarray, right: np.ndarray, at: int) -> np.ndarray:
    """`right` laid over `left` from column `at` (ink adds up, as two pen strokes do)."""
    width = max(left.shape[1], at + right.shape[1])
    out = np.zeros((28, width), np.float32)
    out[:, : left.shape[1]] = left
    out[:, at : at + right.shape[1]] = np.maximum(out[:, at : at + right.shape[1]], right)
    return out


def _shear(ink: np.ndarray, t: float) -> np.ndarray:
    """The strip sheared: row y moves by (14 - y) * t px (t > 0 leans the tops right)."""
    pad = int(np.ceil(abs(t) * 14)) + 1
    wide = np.pad(ink, ((0, 0), (pad, pad)))
    img = Image.fromarray(wide, mode="F")
    # output (x, y) reads input (x - (14 - y) t, y)
    out = img.transform(img.size, Image.Transform.AFFINE, (1, t, -14 * t, 0, 1, 0), Image.Resampling.BILINEAR)
    arr = np.asarray(out, np.float32)
    cols = np.flatnonzero((arr > INK).any(0))
    return arr[:, cols[0] : cols[-1] + 1]


def _on_paper(ink28: np.ndarray, rng: np.random.Generator) -> bytes:
    """The strip photographed on paper: digits 30-110 px tall, margins, lamp light, noise, JPEG."""
    height = float(rng.uniform(30, 110))  # the 20-px digit box, in photo px
    scale = height / 20
    w, h = max(1, round(ink28.shape[1] * scale)), round(28 * scale)
    big = Image.fromarray(ink28, mode="L").resize((w, h), Image.Resampling.BICUBIC)
    mx, my = int(height * rng.uniform(0.3, 1.2)), int(height * rng.uniform(0.3, 1.2))
    layer = Image.new("L", (w + 2 * mx, h + 2 * my), 0)
    layer.paste(big, (mx, my))
    cover = np.clip((np.asarray(layer, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)
    img = _paint(_paper(cover.shape, rng), cover, _pen(rng))
    return _finish(img, rng, float(rng.uniform(0.05, 0.3)), float(rng.uniform(2, 5)))


def _in_boxes(digits: Sequence[np.ndarray], rng: np.random.Generator) -> bytes:
    """A row of printed boxes (shared walls or apart), one digit written in each, photographed."""
    height = float(rng.uniform(40, 100))  # the digit's 20-px box, in photo px
    bh = height * float(rng.uniform(1.25, 1.6))
    bw = bh * float(rng.uniform(0.75, 1.1))
    apart = float(rng.uniform(0.1, 0.4)) * bw if rng.random() < 0.4 else 0.0
    wall = max(1.0, float(rng.uniform(1.0, 3.0)) * height / 60)
    n = len(digits)
    mx, my = int(bw * rng.uniform(0.3, 0.8)), int(bh * rng.uniform(0.3, 0.8))
    hw = (int(bh + 2 * my), int(mx * 2 + n * bw + (n - 1) * (apart - (0 if apart else wall))))
    cover = np.zeros(hw, np.float32)
    step = bw + (apart if apart else -wall)
    for k in range(n):
        left = mx + k * step
        cover = np.maximum(cover, _rect(hw, my, left, my + bh, left + bw, wall))
    img = _paint(_paper(hw, rng), cover, (float(rng.uniform(10, 90)),) * 3)
    pen = _pen(rng)
    frame = max(28, round(height * 28 / 20))
    layer = Image.new("L", (hw[1], hw[0]), 0)
    for k, d in enumerate(digits):
        big = Image.fromarray(d, mode="L").resize((frame, frame), Image.Resampling.BICUBIC)
        cy = my + bh / 2 + rng.uniform(-0.08, 0.08) * bh
        cx = mx + k * step + bw / 2 + rng.uniform(-0.08, 0.08) * bw
        spot = Image.new("L", layer.size, 0)
        spot.paste(big, (int(cx - frame / 2), int(cy - frame / 2)))
        layer = Image.fromarray(np.maximum(np.asarray(layer), np.asarray(spot)))
    ink = np.clip((np.asarray(layer, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)
    return _finish(_paint(img, ink, pen), rng, float(rng.uniform(0.05, 0.25)), float(rng.uniform(2, 5)))


def render_number(digits: Sequence[np.ndarray], kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """A string of (28, 28) uint8 MNIST digits as the file bytes and content type of an upload."""
    if kind not in KINDS:
        raise ValueError(f"unknown number rendering {kind!r}; known: {', '.join(KINDS)}")
    if kind == BOXES:
        return _in_boxes(digits, rng), "image/jpeg"
    if kind in SCENES:
        return render_scene(strip(digits, "spaced", rng), kind, rng), "image/jpeg"
    return _on_paper(strip(digits, kind, rng), rng), "image/jpeg"


def sample_numbers(
    images: np.ndarray,
    labels: np.ndarray,
    kinds: Sequence[str] = KINDS,
    per_kind: int = 100,
    lengths: tuple[int, int] = (2, 8),
    seed: int = 0,
) -> Iterator[NumberUpload]:
    """A fixed, seeded set of numbers: `per_kind` strings of each kind, their lengths drawn from
    `lengths` (inclusive), their digits drawn from `images` without repeats within a string."""
    rng = np.random.default_rng(seed)
    for kind in kinds:
        for _ in range(per_kind):
            n = int(rng.integers(lengths[0], lengths[1] + 1))
            picked = rng.choice(len(images), size=n, replace=False)
            data, content_type = render_number([images[i] for i in picked], kind, rng)
            label = "".join(str(int(labels[i])) for i in picked)
            yield NumberUpload(data, content_type, label, kind, tuple(int(i) for i in picked))


def save_samples(out: str, uploads: Sequence[NumberUpload]) -> None:
    """Write uploads as files named kind-index-label.jpg into folder `out`: to look at them."""
    Path(out).mkdir(parents=True, exist_ok=True)
    for k, u in enumerate(uploads):
        Image.open(io.BytesIO(u.data)).save(Path(out) / f"{u.kind}-{k}-{u.label}.jpg")


def served_reader(models_dir: str | Path) -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], float]:
    """The served model (models_dir/served.json) in-process on onnxruntime, one thread, as
    contract.number's classifier: frames (N, 28, 28) -> (probabilities (N, 10), digit_score
    (N,)), and its detector's threshold (a model without one: every score 1, threshold 0.5)."""
    import onnxruntime as ort

    from contract import read_metadata, resolve

    files = resolve(Path(models_dir))
    meta = read_metadata(files)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(files.onnx), options, providers=["CPUExecutionProvider"])
    score = meta.outputs.digit_score
    names = [meta.outputs.probabilities.name, *([score.name] if score else [])]

    def classify(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(frames, np.float32).reshape(-1, 1, 28, 28)  # (N, 1, 28, 28)
        out = session.run(names, {meta.input.name: batch})
        probs = np.asarray(out[0])  # (N, 10)
        return probs, np.asarray(out[1]).reshape(-1) if score else np.ones(len(probs), np.float32)

    threshold = meta.digit_detector.threshold if meta.digit_detector else 0.5
    return classify, threshold
