"""Things that are not one handwritten digit, made here with no network: the detector's negatives.

Seven kinds, each drawn as white ink on black (some as a small image would hold it) and framed by
contract.framing, the service's own framing, so they reach the detector as they would be served:

    letters      Latin, Greek and Cyrillic letters and other glyphs (no ASCII symbols) from the
                 DejaVu fonts (Debian's fonts-dejavu), rotated and sheared; I, l, O, o and the
                 like are left out: framed, they are a 1 and a 0
    two-digit    two MNIST training digits side by side, as a number is written
    scribbles    one to four random pen strokes
    photo-crops  crops of scikit-learn's two bundled photos, as the service would ink them
    font-letters A-Z, a-z but the letters that print as digits (training/glyphs.py: O o I l S Z B b
                 g q), in one split's font families (training/glyphs.FONT_SPLITS)
    font-symbols + - = x / % & # @ ? ! $ * < > in the same families
    furniture    pieces of a form: ruled lines, ticks, crosses, ticked boxes, grid lines, brackets

Other kinds (three-digit numbers, shapes, other photos, textures) and the test split's font
families are kept out on purpose: the evaluation (benchmarks/bench_non_digits.py,
benchmarks/bench_glyphs.py) measures the detector on them.
"""

from __future__ import annotations

import glob
import hashlib
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from contract.framing import NoInk, frame
from training import glyphs

KINDS = ("letters", "two-digit", "scribbles", "photo-crops", "font-letters", "font-symbols", "furniture")
LATIN = "ABCDEFGHJKLMNPQRSTUVWXYZacdefhijkmnprstuvwxyz"  # no I, l, O, o, b, g, q: in print, 1 0 6 9
GREEK = "ΓΔΘΛΞΠΣΦΨΩαβγεηθκλμξπρσφχψω"  # those unlike a Latin letter or a digit
CYRILLIC = "БГДЖИЛПФЦШЩЪЫЮЯвгджилпфцшщъыюя"  # no З, б, Э, Ч: in print, a 3, a 6, a 3 reversed, a 4
# Other glyphs with no ASCII symbol, arrow or star among them: those are held out for evaluation.
GLYPHS = "∀∃∈∑∏√∞∠∧∨∩∪∫€£¥§¶†‡©®™♠♣♥♦☺♪"
LETTERS = list(LATIN + GREEK + CYRILLIC + GLYPHS)
FONT_GLOB = "/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"
SIDE = 28
P_SMALL = 0.3  # share drawn from a small image (a thumbnail, a distant photo)


def _fonts() -> list[str]:
    """Font files for letters; Pillow's bundled font where Debian's are not installed."""
    return sorted(glob.glob(FONT_GLOB)) or [""]


def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _warp(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small rotation and shear, as a hand or a camera would add."""
    shear = rng.uniform(-0.3, 0.3)
    img = img.transform(img.size, Image.Transform.AFFINE, (1, shear, -shear * img.size[1] / 2, 0, 1, 0))
    return img.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR)


def _has_glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bool:
    """Does the font draw this character, rather than its box for a missing one (a shape)?"""
    missing = font.getmask("\ue000")  # a private-use character no font here draws
    mask = font.getmask(char)
    return bool(mask.size != missing.size or bytes(mask) != bytes(missing))


def letter(rng: np.random.Generator, fonts: list[str]) -> np.ndarray:
    """One letter, in a random DejaVu face and weight."""
    img = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(img)
    font = _font(fonts[rng.integers(len(fonts))], int(rng.integers(40, 64)))
    char = LETTERS[rng.integers(len(LETTERS))]
    while not _has_glyph(font, char):
        char = LETTERS[rng.integers(len(LETTERS))]
    draw.text((48, 48), char, fill=255, font=font, anchor="mm", stroke_width=int(rng.integers(0, 4)), stroke_fill=255)
    return np.asarray(_warp(img, rng), np.float32) / 255.0


def number(rng: np.random.Generator, digits: np.ndarray, count: int = 2) -> np.ndarray:
    """count MNIST digits (N, 28, 28) uint8 side by side, a little apart."""
    picks = digits[rng.integers(len(digits), size=count)].astype(np.float32) / 255.0
    canvas = np.zeros((40, 28 * count + 20), np.float32)
    x = 2
    for d in picks:
        cols = np.flatnonzero(d.max(0) > 0.2)
        d = d[:, cols[0] : cols[-1] + 1] if cols.size else d  # (28, w): the digit's own width
        y = int(rng.integers(0, 13))
        w = min(d.shape[1], canvas.shape[1] - x)
        canvas[y : y + 28, x : x + w] = np.maximum(canvas[y : y + 28, x : x + w], d[:, :w])
        x += w + int(rng.integers(1, 7))  # apart: two touching 1s would be one thick 1
    return canvas


def _chaikin(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Corner cutting: a polyline (K, 2) -> a smooth curve through its neighbourhood."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        points = np.concatenate([points[:1], cut, points[-1:]])
    return points


def scribble(rng: np.random.Generator) -> np.ndarray:
    """One to four random curved strokes (four to eight turns each), in random pen widths."""
    img = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 5))):
        curve = _chaikin(rng.uniform(8, 88, size=(int(rng.integers(4, 9)), 2)))
        draw.line([tuple(p) for p in curve], fill=255, width=int(rng.integers(3, 11)), joint="curve")
    return np.asarray(img, np.float32) / 255.0


def _photos() -> list[np.ndarray]:
    """scikit-learn's bundled photos (china, flower) in grey, (H, W) float32 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    return [np.asarray(Image.fromarray(im).convert("L"), np.float32) / 255.0 for im in load_sample_images().images]


def photo_crop(rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    """A crop of a photo turned into "ink" as the service would: distance from the paper (median)."""
    photo = photos[rng.integers(len(photos))]
    side = int(rng.integers(24, 200))
    y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
    crop = photo[y : y + side, x : x + side]
    paper = float(np.median(crop[[0, -1]].ravel().tolist() + crop[:, [0, -1]].ravel().tolist()))
    ink = np.abs(crop - paper)
    ink = ink / max(float(ink.max()), 1e-3)
    return np.where(ink < 0.2, 0.0, ink).astype(np.float32)


def small(ink: np.ndarray, long_side: int) -> np.ndarray:
    """The same ink as a small image would hold it: box-averaged down to long_side pixels."""
    h, w = ink.shape
    scale = long_side / max(h, w)
    if scale >= 1.0:
        return ink
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))


def make(kind: str, n: int, seed: int, digits: np.ndarray, split: str = "train") -> np.ndarray:
    """n framed negatives of one kind: (n, 28, 28) uint8, white on black; font kinds in split's fonts."""
    rng = np.random.default_rng(seed)
    fonts = _fonts()
    families = glyphs.font_files(split) if kind.startswith("font-") else ()
    photos = _photos() if kind == "photo-crops" else []
    draw: dict[str, Callable[[], np.ndarray]] = {
        "letters": lambda: letter(rng, fonts),
        "two-digit": lambda: number(rng, digits, 2),
        "scribbles": lambda: scribble(rng),
        "photo-crops": lambda: photo_crop(rng, photos),
        "font-letters": lambda: glyphs.printed(glyphs.LETTERS, families, rng)[0],
        "font-symbols": lambda: glyphs.printed(glyphs.SYMBOLS, families, rng)[0],
        "furniture": lambda: glyphs.furniture(rng),
    }
    out = np.empty((n, SIDE, SIDE), np.uint8)
    i = 0
    while i < n:
        ink = draw[kind]()
        if rng.random() < P_SMALL:
            ink = small(ink, int(rng.integers(12, 41)))
        try:
            out[i] = np.round(frame(ink) * 255).astype(np.uint8)  # framed exactly as the service frames
        except NoInk:  # a crop of flat sky: draw another
            continue
        i += 1
    return out


def bank(
    n_per_kind: int,
    seed: int,
    digits: np.ndarray,
    cache: Path | None = None,
    kinds: tuple[str, ...] = KINDS,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray]:
    """Every kind's negatives: (n_per_kind * K, 28, 28) uint8 and their kind index (K kinds).

    With a cache folder, each kind is kept there as .npy, named by its recipe, and made only once.
    """
    parts = []
    for kind in kinds:
        path = cache / f"{kind}-{split}-{n_per_kind}-{seed}-{RECIPE}.npy" if cache else None
        if path is not None and path.exists():
            parts.append(np.load(path))
            continue
        t0 = time.time()
        parts.append(make(kind, n_per_kind, seed * 100 + KINDS.index(kind), digits, split))
        print(f"  made {n_per_kind:,} {kind} ({time.time() - t0:.0f} s)", flush=True)
        if path is not None:
            np.save(path, parts[-1])
    return np.concatenate(parts), np.repeat(np.arange(len(kinds)), n_per_kind)


# A cached bank is reused only while the code that drew it is unchanged.
RECIPE = hashlib.sha256((inspect.getsource(sys.modules[__name__]) + inspect.getsource(glyphs)).encode()).hexdigest()[:8]
