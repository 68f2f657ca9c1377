"""Encode pixels as upload bytes in tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bytes(pixels: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    """(H, W) or (H, W, C) uint8 -> file bytes in `fmt`."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **params)
    return buf.getvalue()
