"""Bytes -> upright image, refusing what is not a supported, sane, complete image.

Two steps, so that a request's budgets hold before any pixel is decoded: `probe` reads only
the header (the size decoding will allocate), `load` decodes. `decode` is both in one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
from dataclasses import dataclass

import numpy as np
import pyspng
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from contract import photo
from service.errors import IMAGE_FORMATS, BadInput

logger = logging.getLogger(__name__)

# A truncated file is an error, never a half-grey image that the model would guess at.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own bomb check warns (and raises at 2x) from a global limit; ours, per settings,
# is checked from the header below, before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None

# Big photos are decoded at reduced size when the codec can (JPEG DCT scaling, 1/2 to 1/8):
# the digit needs a few hundred pixels at most, and a 12 MP decode costs ~50x more.
DECODE_LONG_SIDE = 512
# A JPEG's stored size may exceed the pixel limit by this factor (a 48 MP phone photo under
# the default): it is decoded at 1/8 scale, but libjpeg still reads every stored block.
JPEG_STORED_FACTOR = 4
# Where Pillow's Image.getexif() finds an orientation (and TIFF tags, `tag_v2`). An upload
# with none of them is upright as stored and skips exif_transpose: 20% of a small PNG's decode.
ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")

# The PNGs programmatic clients and drawing canvases send (8-bit grey, RGB or RGBA,
# not interlaced, no palette or transparency key, no chunk that could carry an orientation)
# are decoded by libspng: a 28x28 one in 4.6 us against Pillow's 15 us, which was more than
# half of /predict_batch's work outside the model (`benchmarks/profile_service.py stages`).
# Anything else, or anything libspng refuses, goes to Pillow, which decides and words the error.
# pyspng holds the GIL while it decodes (Pillow lets go): from a decode thread, a 16 MP PNG
# stalled the event loop for 160 ms. Its gain is on small uploads, so bigger ones go to Pillow.
LIBSPNG_MAX_PIXELS = 1 << 18  # 512x512
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR = b"\x00\x00\x00\x0dIHDR"  # the first chunk: 13 bytes of header
PLAIN_PNG_COLOURS = (0, 2, 6)  # IHDR colour types: grey, RGB, RGBA (pyspng refuses grey+alpha)
PLAIN_PNG_CHUNKS = frozenset(  # pixel data, and chunks that neither Pillow nor libspng apply
    (b"IDAT", b"IEND", b"pHYs", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"tIME")
)

Decoded = photo.Image_  # what contract.photo frames: a PIL image, or (H, W[, C]) uint8 from libspng


@dataclass(frozen=True)
class Header:
    """An upload whose header was read and found within the per-image limit; no pixels yet."""

    source: bytes | Image.Image  # a plain PNG's bytes (for libspng), or Pillow's lazy image
    pixels: int  # width x height as it will be decoded (a JPEG at its reduced scale)


def decode(data: bytes, *, max_pixels: int, accepted: str) -> Decoded:
    """One upload's pixels, upright: for plain PNGs a uint8 array, (H, W) grey, (H, W, 3) RGB
    or (H, W, 4) RGBA; else open_image's PIL image."""
    return load(probe(data, max_pixels=max_pixels, accepted=accepted), accepted)


def probe(data: bytes, *, max_pixels: int, accepted: str) -> Header:
    """Read one upload's header: its decoded size, refused (413) over max_pixels."""
    pixels = _plain_png(data)
    if pixels is not None and pixels <= min(max_pixels, LIBSPNG_MAX_PIXELS):
        return Header(data, pixels)
    img = open_header(data, max_pixels=max_pixels, accepted=accepted)
    return Header(img, img.size[0] * img.size[1])


def load(header: Header, accepted: str) -> Decoded:
    """Decode a probed upload (see decode)."""
    source = header.source
    if isinstance(source, bytes):
        with contextlib.suppress(Exception):  # Pillow reads it, or says what is wrong with it
            pixels: np.ndarray = pyspng.load(source)  # (H, W) or (H, W, C) uint8
            return pixels
        source = open_header(source, max_pixels=header.pixels, accepted=accepted)
    return load_image(source, accepted)


def _plain_png(data: bytes) -> int | None:
    """Width x height of a PNG whose every chunk up to IEND is in PLAIN_PNG_CHUNKS, 8-bit;
    None for any other upload."""
    if not data.startswith(PNG_SIGNATURE) or data[8:16] != PNG_IHDR or len(data) < 45:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or colour not in PLAIN_PNG_COLOURS or interlace or not width or not height:
        return None
    pos = 33  # past the signature and IHDR: length, type, 13 bytes, CRC
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":
            return int(width * height)
        if kind not in PLAIN_PNG_CHUNKS:
            return None
        pos += 12 + length
    return None  # no IEND: truncated, for Pillow to refuse


def open_image(data: bytes, *, max_pixels: int, accepted: str) -> Image.Image:
    """Decode one upload with Pillow (never libspng), upright."""
    return load_image(open_header(data, max_pixels=max_pixels, accepted=accepted), accepted)


def open_header(data: bytes, *, max_pixels: int, accepted: str) -> Image.Image:
    """Pillow's lazy image: header read, size checked, a big JPEG set to decode scaled down."""
    if not data:
        raise BadInput("the image is empty (0 bytes)", accepted)
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # only these plugins look
    except UnidentifiedImageError:
        raise _unsupported(data, accepted) from None
    except Exception as exc:  # any decoder failure on untrusted bytes is the upload's fault
        raise BadInput(f"the image header could not be read ({exc})", accepted) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise BadInput(f"the image has no pixels ({width}x{height})", accepted)
    stored = width * height
    if img.format in ("JPEG", "MPO") and max(width, height) > 2 * DECODE_LONG_SIDE:
        if stored > JPEG_STORED_FACTOR * max_pixels:
            raise _bomb(JPEG_STORED_FACTOR * max_pixels, accepted, f"{width}x{height} JPEG")
        scale = DECODE_LONG_SIDE / max(width, height)
        try:
            img.draft(img.mode, (int(width * scale) + 1, int(height * scale) + 1))
        except Exception as exc:
            raise BadInput(f"the image header could not be read ({exc})", accepted) from None
    if img.size[0] * img.size[1] > max_pixels:
        raise _bomb(max_pixels, accepted, f"{width}x{height}")
    return img


def load_image(img: Image.Image, accepted: str) -> Image.Image:
    """Decode an opened image fully and turn it upright by its EXIF orientation."""
    try:
        img.load()
    except Exception as exc:  # truncated, corrupt, or a decoder bug tripped by odd bytes
        raise BadInput(f"the image is truncated or corrupt ({exc})", accepted) from None
    if hasattr(img, "tag_v2") or any(key in img.info for key in ORIENTATION_SOURCES):
        try:
            ImageOps.exif_transpose(img, in_place=True)  # in place: no copy
        except Exception:  # a malformed EXIF block: the pixels as stored are still an image
            logger.info("ignoring an unreadable EXIF orientation")
    return img


def _unsupported(data: bytes, accepted: str) -> BadInput:
    """415 naming the format when Pillow knows it but we do not take it, else 400."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return BadInput(f"image format {img.format} is not supported", accepted, 415)
    except Exception:
        return BadInput("the bytes are not an image that could be read", accepted)


def _bomb(max_pixels: int, accepted: str, size: str) -> BadInput:
    """413 for a decompression bomb: a small file that would decode to huge pixel counts."""
    return BadInput(f"the image ({size}) has more than the {max_pixels:,} pixel limit", accepted, 413)
