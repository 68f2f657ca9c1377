"""Uploads that are not one handwritten digit, for measuring the digit detector.

Nine kinds. The detector's training saw the first four kinds (its own images, drawn in frame
space by training/negatives.py; these are other draws, rendered as uploads); the last five it
never saw, so they measure it honestly:

    trained   letters      A-Z, a-z (not I, l, O, o: framed, those are a 1 and a 0), DejaVu fonts
              two-digit    two MNIST *test* digits side by side
              scribbles    one to three random pen strokes
              photo-crops  crops of scikit-learn's two bundled photos
    held out  symbols      + - = × ÷ % & # @ ? ! $ * < > / from the Liberation fonts
              three-digit  three MNIST test digits side by side
              shapes       squares, rectangles, triangles, stars, arrows, crosses; outline or filled
              photos       crops of matplotlib's sample images (a face, a present, a logo, an MRI slice)
              textures     noise, stripes, checkerboards, gradients

Drawn kinds (letters to shapes) are ink rendered three ways: dark ink on light paper at 64-400
px (40%), a 28x28 MNIST-style frame as MNIST stores a digit (10%), or a 28x28 frame through one
of harness.uploads' photo-like renderings, exactly as the test digits are rendered (50%).
Photos and textures are whole images. numpy + Pillow (scikit-learn and matplotlib for their
bundled pictures), seeded: the same arguments give the same bytes, and each kind's draws do
not depend on which other kinds are asked for.
"""

from __future__ import annotations

import functools
import glob
import gzip
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from harness.mnist import load_mnist
from harness.uploads import _PEN_COLOURS, HARD, PHOTO_LIKE, _encode, _on_paper, render

TRAINED_KINDS: tuple[str, ...] = ("letters", "two-digit", "scribbles", "photo-crops")
HELD_OUT_KINDS: tuple[str, ...] = ("symbols", "three-digit", "shapes", "photos", "textures")
KINDS: tuple[str, ...] = TRAINED_KINDS + HELD_OUT_KINDS

LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in "IlOo")
SYMBOLS = "+-=×÷%&#@?!$*<>/"
LETTER_FONTS = "/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"
SYMBOL_FONTS = "/usr/share/fonts/truetype/liberation/Liberation*.ttf"
MPL_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png", "s1045.ima.gz")
SHAPES = ("square", "rectangle", "triangle", "star", "arrow", "cross")
TEXTURES = ("noise", "stripes", "checkerboard", "gradient")
# How drawn kinds reach the service: clean ink on paper, an MNIST frame, or a photo-like rendering.
# The hard kinds as they were when the detector's held-out set was first measured: a kind added to
# harness.uploads later (pencil_noisy) must not redraw every non-digit after it.
PHOTO_RENDERINGS: tuple[str, ...] = (*PHOTO_LIKE, *HARD[:3])
CANVAS = 128  # px side that drawn kinds are drawn at


@dataclass(frozen=True)
class NonDigit:
    """One upload that is not a digit: what a client would POST, and how it was made."""

    data: bytes
    content_type: str
    kind: str
    rendering: str  # "clean", "frame28", a harness.uploads rendering, "picture" (photos, crops) or a texture name
    index: int  # position within its kind


# --- resources, read once -------------------------------------------------------------------


@functools.cache
def _font_files(pattern: str) -> tuple[str, ...]:
    """Font files matching pattern, or ("",): Pillow's own font where Debian's are not installed."""
    return tuple(sorted(f for f in glob.glob(pattern) if "MathTeX" not in f)) or ("",)


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


@functools.cache
def _mnist_test(mnist_dir: str | None) -> np.ndarray:
    return load_mnist(mnist_dir, "test")[0]  # (10000, 28, 28) uint8


@functools.cache
def _sklearn_photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images  # the dev extra; pictures inside the wheel

    return tuple(load_sample_images().images)  # (427, 640, 3) uint8 each


@functools.cache
def _mpl_photos() -> tuple[Image.Image, ...]:
    import matplotlib  # the dev extra; sample_data ships inside the wheel

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    out = []
    for name in MPL_PHOTOS:
        if name.endswith(".ima.gz"):  # a 256x256 big-endian 16-bit MRI slice
            mri = np.frombuffer(gzip.decompress((folder / name).read_bytes()), ">u2").reshape(256, 256)
            out.append(Image.fromarray((255.0 * mri / max(int(mri.max()), 1)).astype(np.uint8), mode="L"))
        else:
            img = Image.open(folder / name)
            img.load()
            out.append(img)
    return tuple(out)


# --- ink: (H, W) float32 in [0, 1], white on black ------------------------------------------


def _warp(img: Image.Image, rng: np.random.Generator, angle: float) -> Image.Image:
    """A small shear and rotation, as a hand or a camera adds."""
    shear = rng.uniform(-0.25, 0.25)
    img = img.transform(img.size, Image.Transform.AFFINE, (1, shear, -shear * img.size[1] / 2, 0, 1, 0))
    return img.rotate(rng.uniform(-angle, angle), resample=Image.Resampling.BILINEAR)


def _glyph(chars: str, fonts: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """One character from one of `fonts`, in a random size and stroke, a little warped."""
    img = Image.new("L", (CANVAS, CANVAS), 0)
    font = _font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(56, 90)))
    char = chars[int(rng.integers(len(chars)))]
    stroke = int(rng.integers(0, 4))
    ImageDraw.Draw(img).text((CANVAS // 2, CANVAS // 2), char, 255, font, "mm", stroke_width=stroke, stroke_fill=255)
    return np.asarray(_warp(img, rng, 15.0), np.float32) / 255.0


def _number(count: int, rng: np.random.Generator, mnist_dir: str | None) -> np.ndarray:
    """count MNIST test digits side by side, each at its own width, a little apart and uneven."""
    digits = _mnist_test(mnist_dir)
    picks = digits[rng.choice(len(digits), size=count, replace=False)].astype(np.float32) / 255.0
    canvas = np.zeros((36, 28 * count + 24), np.float32)
    x = int(rng.integers(2, 6))
    for d in picks:
        cols = np.flatnonzero(d.max(0) > 0.2)
        d = d[:, cols[0] : cols[-1] + 1] if cols.size else d  # (28, w)
        y = int(rng.integers(0, 9))
        w = min(d.shape[1], canvas.shape[1] - x)
        canvas[y : y + 28, x : x + w] = np.maximum(canvas[y : y + 28, x : x + w], d[:, :w])
        x += w + int(rng.integers(1, 7))  # apart: touching digits would be one new shape
    return canvas[:, : min(x + 2, canvas.shape[1])]


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """One to three pen strokes that wander: a random walk with momentum, bouncing off the edges."""
    img = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        pos = rng.uniform(24, CANVAS - 24, 2)
        heading, turn = rng.uniform(0, 2 * np.pi), rng.normal(0, 0.15)
        points = [tuple(pos)]
        for _ in range(int(rng.integers(15, 60))):
            turn = 0.8 * turn + rng.normal(0, 0.25)
            heading += turn
            pos = np.clip(pos + rng.uniform(3, 7) * np.array([np.cos(heading), np.sin(heading)]), 8, CANVAS - 8)
            points.append(tuple(pos))
        draw.line(points, fill=255, width=int(rng.integers(4, 13)), joint="curve")
    return np.asarray(img, np.float32) / 255.0


def _shape_outline(name: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (K, 2) of a shape in about [-1, 1]^2."""
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    if name == "rectangle":
        a = rng.uniform(0.4, 0.75)
        return np.array([[-1, -a], [1, -a], [1, a], [-1, a]], np.float64)
    if name == "triangle":
        t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6]) + rng.normal(0, 0.15, 3)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "star":
        k = int(rng.integers(5, 8))
        t = np.linspace(-np.pi / 2, 1.5 * np.pi, 2 * k, endpoint=False)
        r = np.where(np.arange(2 * k) % 2, rng.uniform(0.35, 0.55), 1.0)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if name == "arrow":
        s, h = rng.uniform(0.12, 0.25), rng.uniform(0.4, 0.6)  # shaft half-width, head half-width
        return np.array([[-1, -s], [0.2, -s], [0.2, -h], [1, 0], [0.2, h], [0.2, s], [-1, s]], np.float64)
    if name == "cross":
        w = rng.uniform(0.2, 0.35)
        return np.array(
            [[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]]
        )
    raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")


def _shape(rng: np.random.Generator) -> np.ndarray:
    """A shape, rotated, outlined or filled."""
    vertices = _shape_outline(SHAPES[int(rng.integers(len(SHAPES)))], rng)
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = [tuple(p) for p in vertices @ rot.T * rng.uniform(34, 50) + CANVAS / 2]
    img = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        draw.polygon(points, fill=255)
    else:
        draw.line([*points, points[0], points[1]], fill=255, width=int(rng.integers(3, 11)), joint="curve")
    return np.asarray(img, np.float32) / 255.0


def _frame28(ink: np.ndarray) -> np.ndarray:
    """Ink framed as MNIST frames a digit (fit in 20x20, centred by mass in 28x28): (28, 28) uint8."""
    ys, xs = np.nonzero(ink > 0.2 * float(ink.max()))
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = 20.0 / max(crop.shape)
    w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((w, h), Image.Resampling.LANCZOS), np.float32)
    small = np.clip(small / max(float(small.max()), 1e-6), 0.0, 1.0)
    yy, xx = np.indices(small.shape)
    cy, cx = (yy * small).sum() / small.sum(), (xx * small).sum() / small.sum()
    top, left = int(np.clip(round(14 - cy), 0, 28 - h)), int(np.clip(round(14 - cx), 0, 28 - w))
    out = np.zeros((28, 28), np.uint8)
    out[top : top + h, left : left + w] = np.round(small * 255).astype(np.uint8)
    return out


def _clean(ink: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Ink on paper with a margin, 64-400 px on its long side: a scan or a screenshot, PNG or JPEG."""
    ys, xs = np.nonzero(ink > 0.05)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    margin = rng.uniform(0.1, 0.35)  # of the ink's longer side, each way
    pad = round(margin * max(crop.shape))
    page = np.pad(crop, pad)  # (H, W)
    long_side = int(rng.integers(64, 401))
    scale = long_side / max(page.shape)
    size = (max(8, round(page.shape[1] * scale)), max(8, round(page.shape[0] * scale)))
    big = np.asarray(Image.fromarray(page, mode="F").resize(size, Image.Resampling.BILINEAR), np.float32)
    pen = _PEN_COLOURS[int(rng.integers(len(_PEN_COLOURS)))]
    rgb = Image.fromarray(_on_paper(np.clip(big, 0.0, 1.0), rng, pen, noise=rng.uniform(0.0, 3.0)))
    if rng.random() < 0.5:
        return _encode(rgb, "PNG"), "image/png"
    return _encode(rgb, "JPEG", quality=int(rng.integers(75, 96))), "image/jpeg"


def _photo_image(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """A crop (sometimes the whole picture) resized to 48-400 px, in colour or grey, JPEG or PNG."""
    w, h = img.size
    if rng.random() < 0.2:
        box = (0, 0, w, h)
    else:
        side = int(rng.uniform(0.2, 0.8) * min(w, h))
        cw, ch = min(w, round(side * rng.uniform(0.75, 1.33))), side
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        box = (left, top, left + cw, top + ch)
    crop = img.crop(box)
    scale = int(rng.integers(48, 401)) / max(crop.size)
    crop = crop.resize(
        (max(8, round(crop.width * scale)), max(8, round(crop.height * scale))), Image.Resampling.BICUBIC
    )
    if rng.random() < 0.3:
        crop = crop.convert("L")
    if crop.mode in ("RGBA", "LA", "P") or rng.random() < 0.3:
        return _encode(crop, "PNG"), "image/png"
    return _encode(crop.convert("RGB"), "JPEG", quality=int(rng.integers(70, 96))), "image/jpeg"


def _texture(name: str, rng: np.random.Generator) -> np.ndarray:
    """A whole-image pattern (H, W) float32 in [0, 1]."""
    h, w = int(rng.integers(48, 401)), int(rng.integers(48, 401))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    if name == "noise":
        grain = rng.uniform(0.0, 4.0)
        noise = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L")
        field = np.asarray(noise.filter(ImageFilter.GaussianBlur(grain)) if grain > 0.5 else noise, np.float32)
        return np.clip((field - field.mean()) / max(float(field.std()), 1e-6) * 0.2 + 0.5, 0, 1)
    if name == "stripes":
        period = rng.uniform(4, max(h, w) / 3)
        wave = np.sin(2 * np.pi * along / period)
        return (wave > 0).astype(np.float32) if rng.random() < 0.5 else (wave + 1) / 2
    if name == "checkerboard":
        cell = rng.uniform(4, max(h, w) / 3)
        across = -xx * np.sin(theta) + yy * np.cos(theta)
        return ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)
    if name == "gradient":
        if rng.random() < 0.5:  # linear
            return (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = np.hypot(yy - cy, xx - cx)
        return r / max(float(r.max()), 1e-6)
    raise ValueError(f"unknown texture {name!r}; known: {', '.join(TEXTURES)}")


def _texture_image(rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A texture in two random colours (or grey), PNG or JPEG; returns (bytes, content type, name)."""
    name = TEXTURES[int(rng.integers(len(TEXTURES)))]
    field = _texture(name, rng)[..., None]  # (H, W, 1)
    dark, light = rng.uniform(0, 110, 3), rng.uniform(150, 255, 3)
    if rng.random() < 0.4:
        dark, light = dark.mean().repeat(3), light.mean().repeat(3)
    img = Image.fromarray(np.clip(dark + (light - dark) * field, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        return _encode(img, "PNG"), "image/png", name
    return _encode(img, "JPEG", quality=int(rng.integers(70, 96))), "image/jpeg", name


# --- one upload of a kind ---------------------------------------------------------------------


def _ink_drawer(kind: str, rng: np.random.Generator, mnist_dir: str | None) -> Callable[[], np.ndarray] | None:
    """How to draw one ink image of a drawn kind; None for photos and textures."""
    drawers: dict[str, Callable[[], np.ndarray]] = {
        "letters": lambda: _glyph(LETTERS, _font_files(LETTER_FONTS), rng),
        "symbols": lambda: _glyph(SYMBOLS, _font_files(SYMBOL_FONTS), rng),
        "two-digit": lambda: _number(2, rng, mnist_dir),
        "three-digit": lambda: _number(3, rng, mnist_dir),
        "scribbles": lambda: _scribble(rng),
        "shapes": lambda: _shape(rng),
    }
    return drawers.get(kind)


def _one(kind: str, index: int, rng: np.random.Generator, mnist_dir: str | None) -> NonDigit:
    if kind == "photo-crops":
        photos = _sklearn_photos()
        data, ctype = _photo_image(Image.fromarray(photos[int(rng.integers(len(photos)))]), rng)
        return NonDigit(data, ctype, kind, "picture", index)
    if kind == "photos":
        pictures = _mpl_photos()
        data, ctype = _photo_image(pictures[int(rng.integers(len(pictures)))], rng)
        return NonDigit(data, ctype, kind, "picture", index)
    if kind == "textures":
        data, ctype, name = _texture_image(rng)
        return NonDigit(data, ctype, kind, name, index)
    draw = _ink_drawer(kind, rng, mnist_dir)
    if draw is None:
        raise ValueError(f"unknown non-digit kind {kind!r}; known: {', '.join(KINDS)}")
    ink = draw()
    u = rng.random()
    if u < 0.4:
        data, ctype = _clean(ink, rng)
        return NonDigit(data, ctype, kind, "clean", index)
    frame = _frame28(ink)
    if u < 0.5:
        return NonDigit(_encode(Image.fromarray(frame, mode="L"), "PNG"), "image/png", kind, "frame28", index)
    rendering = PHOTO_RENDERINGS[int(rng.integers(len(PHOTO_RENDERINGS)))]
    data, ctype = render(frame, rendering, rng)
    return NonDigit(data, ctype, kind, rendering, index)


def iter_non_digits(
    kinds: Sequence[str] = KINDS, n_per_kind: int = 100, seed: int = 0, mnist_dir: str | Path | None = None
) -> Iterator[NonDigit]:
    """n_per_kind uploads of each kind, kind by kind; a smaller n gives a prefix of a larger one."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown non-digit kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    folder = None if mnist_dir is None else str(mnist_dir)
    for kind in kinds:
        rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])  # each kind its own stream
        for index in range(n_per_kind):
            yield _one(kind, index, rng, folder)


def sample_non_digits(
    kinds: Sequence[str] = KINDS, n_per_kind: int = 100, seed: int = 0, mnist_dir: str | Path | None = None
) -> list[tuple[bytes, str]]:
    """(upload bytes, kind) for n_per_kind uploads of each kind: the same arguments, the same bytes."""
    return [(u.data, u.kind) for u in iter_non_digits(kinds, n_per_kind, seed, mnist_dir)]
