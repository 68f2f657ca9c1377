"""Printed characters as uploads, in font families the digit detector never trained on.

Three sets, each character rendered as harness.non_digits renders its drawn kinds (dark ink on
paper at 64-400 px, a 28x28 MNIST-style frame, or a photo-like rendering of that frame):

    printed digits   0-9: real digits, which must not be flagged
    letters          A-Z, a-z, one by one; those a font prints as a digit (O o I l S Z B b g q)
                     reported on their own, since flagging them is not always right
    symbols          + - = x / % & # @ ? ! $ * < > (harness.non_digits' set) and ^ ~
    brackets         ( ) [ ] { }: framed alone, a 1, so reported on their own

in the test font families below (Debian's fonts-liberation, fonts-humor-sans,
fonts-crosextra-carlito, fonts-roboto-unhinted, fonts-linuxlibertine). Training and
validation draw from other families (training/glyphs.py); a unit test keeps them apart. Fonts
not installed are skipped; with none installed the sets are empty.
"""

from __future__ import annotations

import functools
import glob
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFont

from harness.non_digits import PHOTO_RENDERINGS, _clean, _frame28, _glyph
from harness.uploads import _encode, render

TEST_FONTS = (
    "/usr/share/fonts/truetype/liberation/*.ttf",
    "/usr/share/fonts/truetype/humor-sans/*.ttf",
    "/usr/share/fonts/truetype/crosextra/*.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/*.ttf",
    "/usr/share/fonts/opentype/linux-libertine/*.otf",
)
DIGITS = "0123456789"
LOOKALIKES = "OoIlSZBbgq"
LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in LOOKALIKES)
SYMBOLS = "+-=×÷%&#@?!$*<>/^~"
BRACKETS = "()[]{}"  # framed alone, a bracket is a 1: reported apart, as the look-alike letters are
SETS = {
    "printed digits": DIGITS,
    "letters": LETTERS,
    "look-alike letters": LOOKALIKES,
    "symbols": SYMBOLS,
    "brackets": BRACKETS,
}


@dataclass(frozen=True)
class GlyphUpload:
    data: bytes
    content_type: str
    set: str  # a key of SETS
    char: str
    rendering: str


@functools.cache
def test_fonts() -> tuple[str, ...]:
    return tuple(sorted(f for pattern in TEST_FONTS for f in glob.glob(pattern)))


@functools.cache
def _draws(path: str, char: str) -> bool:
    """Does the font draw char (not its box for a missing glyph, not nothing)?"""
    font = ImageFont.truetype(path, 48)
    mask, missing = font.getmask(char), font.getmask("\ue000")
    if mask.size[0] * mask.size[1] == 0 or not any(bytes(mask)):
        return False
    return bool(mask.size != missing.size or bytes(mask) != bytes(missing))


def _one(char: str, set_name: str, rng: np.random.Generator) -> GlyphUpload | None:
    fonts = tuple(f for f in test_fonts() if _draws(f, char))
    if not fonts:
        return None
    ink = _glyph(char, fonts, rng)
    u = rng.random()
    if u < 0.4:
        data, ctype = _clean(ink, rng)
        return GlyphUpload(data, ctype, set_name, char, "clean")
    frame = _frame28(ink)
    if u < 0.5:
        return GlyphUpload(_encode(Image.fromarray(frame, mode="L"), "PNG"), "image/png", set_name, char, "frame28")
    rendering = PHOTO_RENDERINGS[int(rng.integers(len(PHOTO_RENDERINGS)))]
    data, ctype = render(frame, rendering, rng)
    return GlyphUpload(data, ctype, set_name, char, rendering)


def iter_glyph_uploads(per_char: int = 20, seed: int = 0) -> Iterator[GlyphUpload]:
    """per_char uploads of every character of every set, in the test fonts that draw it."""
    for set_name, chars in SETS.items():
        for char in chars:
            rng = np.random.default_rng([seed, zlib.crc32(f"{set_name}/{char}".encode())])
            for _ in range(per_char):
                upload = _one(char, set_name, rng)
                if upload is None:
                    break
                yield upload
