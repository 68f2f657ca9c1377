"""Printed characters, form furniture and low-resolution digits: the detector's wider world.

A user's real digit is not always MNIST's pen: it is printed in some font, shrunk to an icon, or
photographed. A user's non-digit is often a letter or a symbol in a font, or a piece of a form
(a line, a tick, a box ticked). Everything here is drawn with no network from Debian's font
packages, split by family so that some families are never trained on:

    train        DejaVu, FreeFont, URW base 35, TeX Gyre, Comic Neue, Open Sans, Cantarell
    validation   Lato, EB Garamond                              (choosing the head, its threshold)
    test         Liberation, Humor Sans, Carlito, Roboto, Linux Libertine   (reports only)

(apt-get install fonts-freefont-ttf fonts-urw-base35 fonts-texgyre fonts-comic-neue
fonts-open-sans fonts-cantarell fonts-lato fonts-ebgaramond fonts-liberation fonts-humor-sans
fonts-crosextra-carlito fonts-roboto-unhinted fonts-linuxlibertine.) A split whose families are
not installed falls back to DejaVu for training and is empty otherwise.

Each drawer returns ink (H, W) float32 in [0, 1], white on black, to be framed by
contract.framing exactly as the service frames an upload.
"""

from __future__ import annotations

import functools
import glob
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_ROOT = "/usr/share/fonts"
FONT_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "truetype/dejavu/DejaVu*.ttf",
        "truetype/freefont/*.ttf",
        "opentype/urw-base35/*.otf",
        "opentype/tex-gyre/*.otf",
        "opentype/comic-neue/*.otf",
        "truetype/open-sans/*.ttf",
        "opentype/cantarell/*.otf",
    ),
    "validation": ("truetype/lato/*.ttf", "opentype/ebgaramond/*.otf"),
    "test": (
        "truetype/liberation/*.ttf",
        "truetype/humor-sans/*.ttf",
        "truetype/crosextra/*.ttf",
        "truetype/roboto/unhinted/RobotoTTF/*.ttf",
        "opentype/linux-libertine/*.otf",
    ),
}
# Faces that draw pictures or mathematics rather than letters and digits.
NOT_TEXT = ("MathTeX", "StandardSymbols", "D050000L", "-math")

DIGITS = "0123456789"
# Letters that a font prints as a digit, or nearly: reported on their own, never trained as non-digits.
LOOKALIKES = "OoIlSZBbgq"
LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in LOOKALIKES)
SYMBOLS = "+-=×÷%&#@?!$*<>/"
FURNITURE = ("line", "tick", "cross", "ticked-box", "grid", "bracket", "dots", "underline")
CANVAS = 128


@functools.cache
def font_files(split: str) -> tuple[str, ...]:
    """Installed font files of one split, sorted; DejaVu alone (or Pillow's font) for training if none."""
    files = sorted(
        f
        for pattern in FONT_SPLITS[split]
        for f in glob.glob(f"{FONT_ROOT}/{pattern}")
        if not any(bad in f for bad in NOT_TEXT)
    )
    if not files and split == "train":
        return tuple(
            sorted(f for f in glob.glob(f"{FONT_ROOT}/truetype/dejavu/DejaVu*.ttf") if "MathTeX" not in f)
        ) or ("",)
    return tuple(files)


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


@functools.cache
def has_glyph(path: str, char: str) -> bool:
    """Does this font draw char, rather than the box (or nothing) it draws for a missing one?"""
    font = _font(path, 48)
    mask, missing = font.getmask(char), font.getmask("\ue000")
    if mask.size[0] * mask.size[1] == 0 or max(bytes(mask) or b"\0") == 0:
        return False
    return bool(mask.size != missing.size or bytes(mask) != bytes(missing))


def _warp(img: Image.Image, rng: np.random.Generator, angle: float = 12.0) -> Image.Image:
    """A small shear and rotation, as a hand, a scanner or a camera adds."""
    shear = rng.uniform(-0.25, 0.25)
    img = img.transform(img.size, Image.Transform.AFFINE, (1, shear, -shear * img.size[1] / 2, 0, 1, 0))
    return img.rotate(rng.uniform(-angle, angle), resample=Image.Resampling.BILINEAR)


def printed(chars: str, fonts: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One character of chars in one of fonts (random size, weight by stroke, a little warped): (ink, char)."""
    for _ in range(50):
        path = fonts[int(rng.integers(len(fonts)))]
        char = chars[int(rng.integers(len(chars)))]
        if not path or has_glyph(path, char):
            break
    img = Image.new("L", (CANVAS, CANVAS), 0)
    font = _font(path, int(rng.integers(48, 88)))
    stroke = int(rng.choice([0, 0, 0, 1, 2]))
    ImageDraw.Draw(img).text((CANVAS // 2, CANVAS // 2), char, 255, font, "mm", stroke_width=stroke, stroke_fill=255)
    return np.asarray(_warp(img, rng), np.float32) / 255.0, char


def furniture(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A piece of a form: a ruled line, a tick or a cross, a ticked box, grid lines, a bracket, dots."""
    kind = kind or FURNITURE[int(rng.integers(len(FURNITURE)))]
    img = Image.new("L", (CANVAS, CANVAS), 0)
    pen = _Pen(ImageDraw.Draw(img), rng, int(rng.integers(2, 9)))
    c, r = CANVAS / 2, rng.uniform(30, 56)
    if kind in ("line", "underline"):
        _ruled_line(pen, c, r, underline=kind == "underline")
    elif kind == "tick":
        pen.tick(c, c, r)
    elif kind == "cross":
        pen.cross(c, c, r * 0.8)
    elif kind == "ticked-box":
        s = r * 0.8
        pen.draw.rectangle([c - s, c - s, c + s, c + s], outline=255, width=max(2, pen.width // 2))
        (pen.tick if rng.random() < 0.5 else pen.cross)(c, c, s * 0.7)
    elif kind == "grid":
        _grid(pen)
    elif kind == "bracket":
        s, d = r, rng.choice([-1, 1]) * rng.uniform(10, 20)
        pen.draw.line([(c - d, c - s), (c, c - s), (c, c + s), (c - d, c + s)], 255, pen.width)
    elif kind == "dots":
        _dots(pen, c)
    else:
        raise ValueError(f"unknown form furniture {kind!r}; known: {', '.join(FURNITURE)}")
    return np.asarray(img, np.float32) / 255.0


@dataclass(frozen=True)
class _Pen:
    """A hand drawing form marks on one canvas: strokes `width` px wide, a little unsteady."""

    draw: ImageDraw.ImageDraw
    rng: np.random.Generator
    width: int

    def jitter(self, p: tuple[float, float], s: float = 3.0) -> tuple[float, float]:
        return (p[0] + self.rng.normal(0, s), p[1] + self.rng.normal(0, s))

    def tick(self, cx: float, cy: float, s: float) -> None:
        points = [self.jitter((cx - s, cy)), self.jitter((cx - s / 3, cy + s * 0.7)), self.jitter((cx + s, cy - s))]
        self.draw.line(points, 255, self.width, "curve")

    def cross(self, cx: float, cy: float, s: float) -> None:
        self.draw.line([self.jitter((cx - s, cy - s)), self.jitter((cx + s, cy + s))], 255, self.width)
        self.draw.line([self.jitter((cx + s, cy - s)), self.jitter((cx - s, cy + s))], 255, self.width)


def _ruled_line(pen: _Pen, c: float, r: float, underline: bool) -> None:
    """Near horizontal (a vertical stroke is a 1); under a word cut away, a few stray marks above."""
    rng, w = pen.rng, pen.width
    y, a = c + rng.uniform(-20, 20), rng.uniform(-0.35, 0.35)
    pen.draw.line([(c - r, y - a * r), (c + r, y + a * r)], 255, w)
    if underline:
        for _ in range(int(rng.integers(1, 4))):
            x = c + rng.uniform(-r, r)
            pen.draw.line([(x, y - rng.uniform(8, 14)), (x + rng.uniform(2, 6), y - rng.uniform(3, 6))], 255, w)


def _grid(pen: _Pen) -> None:
    """A table's corner or crossing lines."""
    rng, w = pen.rng, max(2, pen.width // 2)
    for _ in range(int(rng.integers(2, 5))):
        if rng.random() < 0.5:
            y = rng.uniform(20, CANVAS - 20)
            pen.draw.line([(rng.uniform(0, 40), y), (rng.uniform(88, CANVAS), y)], 255, w)
        else:
            x = rng.uniform(20, CANVAS - 20)
            pen.draw.line([(x, rng.uniform(0, 40)), (x, rng.uniform(88, CANVAS))], 255, w)


def _dots(pen: _Pen, c: float) -> None:
    """A dotted leader line."""
    rng, w = pen.rng, pen.width
    y, gap = c + rng.uniform(-10, 10), rng.uniform(8, 16)
    for i in range(int(rng.integers(4, 9))):
        x = 10 + i * gap
        pen.draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=255)


def low_resolution(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (28, 28) uint8 digit as a tiny image would hold it, upscaled again: (64, 64) ink.

    Half the UCI way (a 32x32 bitmap, ink counted in 4x4 cells: 8x8, 17 levels), half box-averaged
    to 6-12 px; upscaled bilinearly or by nearest neighbour (blocks), as a client would.
    """
    img = Image.fromarray(digit, mode="L")
    if rng.random() < 0.5:
        bitmap = np.asarray(img.resize((32, 32), Image.Resampling.BILINEAR)) > rng.uniform(90, 160)
        small = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32) / 16.0  # (8, 8)
    else:
        side = int(rng.integers(6, 13))
        small = np.asarray(img.resize((side, side), Image.Resampling.BOX), np.float32) / 255.0
    resample = Image.Resampling.NEAREST if rng.random() < 0.4 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(small, mode="F").resize((64, 64), resample), np.float32).clip(0, 1)
