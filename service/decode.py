"""Bytes -> upright PIL image, refusing what is not a supported, sane, complete image."""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from service.errors import IMAGE_FORMATS, BadInput, too_large

logger = logging.getLogger(__name__)

# A truncated file is an error, never a half-grey image that the model would guess at.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own bomb check warns (and raises at 2x) from a global limit; ours, per settings,
# is checked from the header below, before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None

# Big photos are decoded at reduced size when the codec can (JPEG DCT scaling): the digit
# needs a few hundred pixels at most, and a 12 MP decode costs ~50x more.
DECODE_LONG_SIDE = 512
# Where Pillow's Image.getexif() finds an orientation (and TIFF tags, `tag_v2`). An upload
# with none of them is upright as stored and skips exif_transpose: 20% of a small PNG's decode.
ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def open_image(data: bytes, *, max_pixels: int, accepted: str) -> Image.Image:
    """Decode one upload fully and turn it upright by its EXIF orientation."""
    if not data:
        raise BadInput("the image is empty (0 bytes)", accepted)
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # only these plugins look
    except UnidentifiedImageError:
        raise _unsupported(data, accepted) from None
    except Image.DecompressionBombError:
        raise _bomb(max_pixels, accepted) from None
    except Exception as exc:  # any decoder failure on untrusted bytes is the upload's fault
        raise BadInput(f"the image header could not be read ({exc})", accepted) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise BadInput(f"the image has no pixels ({width}x{height})", accepted)
    if width * height > max_pixels:
        raise _bomb(max_pixels, accepted, f"{width}x{height}")
    if img.format == "JPEG" and max(width, height) > 2 * DECODE_LONG_SIDE:
        scale = DECODE_LONG_SIDE / max(width, height)
        img.draft(img.mode, (int(width * scale) + 1, int(height * scale) + 1))
    try:
        img.load()
    except Image.DecompressionBombError:
        raise _bomb(max_pixels, accepted) from None
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


def _bomb(max_pixels: int, accepted: str, size: str = "") -> BadInput:
    """413 for a decompression bomb: a small file that would decode to huge pixel counts."""
    what = f"the image ({size})" if size else "the image"
    return BadInput(
        f"{what} has more than the {max_pixels:,} pixel limit", accepted, 413
    )


def check_size(n_bytes: int, limit: int, accepted: str) -> None:
    """Refuse a body over the byte limit before reading or decoding it."""
    if n_bytes > limit:
        raise too_large("the request body", limit, accepted)
