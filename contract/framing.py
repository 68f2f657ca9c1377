"""How ink becomes the 28x28 frame the model reads: MNIST's own recipe, written once for both halves.

Crop to the ink, level the strokes between the paper's noise and solid ink, thin strokes far
thicker than MNIST's pen (a felt marker), fit the ink into a 20x20 box keeping its aspect ratio,
and place it in 28x28 with its centre of mass at the centre.
The service frames every upload with it (service/preprocess.py: after turning a photo into
ink); training frames what it draws with it (training/negatives.py), so that what the model
learns from is framed exactly as what it will be served. numpy and Pillow only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

SIDE = 28  # MNIST frame
BOX = 20  # the digit's longer side inside the frame
CENTRE = 14.0  # MNIST test digits have their centre of mass at (14, 14), +-0.5 px
INK_THRESHOLD = 0.35  # of the peak: what counts as ink when finding the digit's box
FLOOR = 0.2  # of the peak: below this is paper texture, noise or JPEG ringing
TOP_PERCENTILE = 90  # ink at or above this percentile of the strokes is solid (1.0)
# Stroke width in frame pixels (stroke_width), over MNIST's 54,000 training digits: median 1.96,
# 90th percentile 2.74, 99th 3.62. Ink wider than MNIST's widest 1% is thinned to its 90th.
STROKE_MAX = 3.6
STROKE_TARGET = 2.7
THIN_SCALE = 8  # thinning runs at no more than 8x the frame's resolution: bounded work


class NoInk(ValueError):
    """Nothing in the image is ink: there is nothing to frame."""


def blocks(a: np.ndarray) -> np.ndarray:
    """2x2 block means: a lone noisy pixel cannot pass for ink."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return a
    return np.asarray(a[:h, :w].reshape(h // 2, 2, w // 2, 2, *a.shape[2:]).mean(axis=(1, 3)))


def peak(a: np.ndarray) -> float:
    """The strongest value that is not a lone noisy pixel."""
    return float(blocks(a).max())


def resize(channel: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize one float channel (size is (width, height), as Pillow has it)."""
    return np.asarray(Image.fromarray(channel, mode="F").resize(size, resample), np.float32)


def ink_mask(ink: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) bool: ink above the threshold that a neighbour backs up. A pixel counts when one
    of the four 2x2 windows holding it averages above the threshold too: a stroke (even a 1 px
    line at full strength) passes, a lone pixel of sensor noise does not, so that a noisy photo
    of a faint digit is not cropped to the noise at its edges."""
    mask = ink > threshold
    h, w = ink.shape
    if h < 2 or w < 2:
        return mask
    pairs = ink[:, :-1] + ink[:, 1:]  # (H, W-1)
    window = (pairs[:-1] + pairs[1:]) > 4 * threshold  # (H-1, W-1): 2x2 means above it
    backed = np.zeros((h + 1, w + 1), bool)  # padded so that each pixel sees its four windows
    backed[1:-1, 1:-1] = window
    backed = backed[:-1, :-1] | backed[:-1, 1:] | backed[1:, :-1] | backed[1:, 1:]  # (H, W)
    return mask & backed


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of the ink above half strength: twice its area over the length of
    its outline (a stroke of width w and length L has area wL and an outline of about 2L)."""
    solid = ink > 0.5
    outline = (
        np.count_nonzero(solid[:, 1:] != solid[:, :-1])
        + np.count_nonzero(solid[1:] != solid[:-1])
        + np.count_nonzero(solid[0]) + np.count_nonzero(solid[-1])
        + np.count_nonzero(solid[:, 0]) + np.count_nonzero(solid[:, -1])
    )  # fmt: skip
    return 2.0 * np.count_nonzero(solid) / outline if outline else 0.0


def erode(a: np.ndarray, radius: int) -> np.ndarray:
    """Grey erosion by a (2r+1)-square, paper (0) beyond the edges: a row pass, then a column pass,
    so that the work grows with r, not r squared."""
    k = 2 * radius + 1
    a = sliding_window_view(np.pad(a, ((0, 0), (radius, radius))), k, axis=1).min(-1)
    return np.asarray(sliding_window_view(np.pad(a, ((radius, radius), (0, 0))), k, axis=0).min(-1))


def thin(crop: np.ndarray) -> np.ndarray:
    """A levelled crop (ink in [0, 1], cropped to the digit) whose strokes would be wider in the
    frame than STROKE_MAX -> the same digit eroded once by what takes a straight stroke to
    STROKE_TARGET, cropped again; any other crop comes back as it is. A felt-marker digit framed
    as it is reaches the model far bolder than any it learnt from (a thick 7 is read as 2).

    One erosion, not repeated until the measure reads the target: on marker renderings of
    validation digits, eroding again read fewer right (thick marker 98.3% against 99.7%)."""
    h, w = crop.shape
    width = stroke_width(crop) * BOX / max(h, w)  # in frame pixels
    if width <= STROKE_MAX:
        return crop
    side = min(max(h, w), THIN_SCALE * BOX)  # erode at up to 8x the frame's resolution
    if side < max(h, w):
        size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
        crop = np.clip(resize(crop, size, Image.Resampling.BOX), 0.0, 1.0)
    # px to take off each side of a stroke: eroding r shortens the digit's box by 2r as well, and
    # the frame scales that box back up to BOX, so (stroke - 2r) / (side - 2r) = target / BOX.
    radius = round((width - STROKE_TARGET) * side / BOX / (2 * (1 - STROKE_TARGET / BOX)))
    if radius < 1:
        return crop
    eroded = erode(crop, radius)
    mask = eroded > INK_THRESHOLD
    if not mask.any():
        return crop
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return eroded[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def crop_mask(ink: np.ndarray, top_ink: float | None = None) -> np.ndarray:
    """(H, W) bool: the ink that frame crops to (its box and its levels come from it).
    top_ink: peak(ink) when the caller has it already."""
    return ink_mask(ink, INK_THRESHOLD * (peak(ink) if top_ink is None else top_ink))


def frame(ink: np.ndarray, mask: np.ndarray | None = None, top_ink: float | None = None) -> np.ndarray:
    """(H, W) ink >= 0 (0 = paper) -> (28, 28) float32 in [0, 1], white on black; NoInk if none.
    mask, top_ink: crop_mask(ink) and peak(ink) when the caller has them already (the scene
    stage's plain check makes both): the same frame, without computing them twice."""
    if top_ink is None:
        top_ink = peak(ink)
    if mask is None:
        mask = ink_mask(ink, INK_THRESHOLD * top_ink)
    if top_ink <= 0.0 or not mask.any():
        raise NoInk("no ink to frame")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    # Level strokes between the paper's noise and solid ink, keeping their soft edges.
    floor, top = FLOOR * top_ink, float(np.percentile(ink[mask], TOP_PERCENTILE))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop = thin(np.clip((crop - floor) / max(top - floor, 1e-6), 0.0, 1.0).astype(np.float32, copy=False))
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1.0 else Image.Resampling.BILINEAR
    digit = np.clip(resize(crop, size, resample), 0.0, 1.0)
    if digit.max() <= 0.0:
        raise NoInk("no ink left after scaling")
    digit /= digit.max()
    return place(digit)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) of the intensity-weighted centre, in pixel-index coordinates."""
    by_row = img.sum(1)
    total = float(by_row.sum())
    if total <= 0:
        return (img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2
    rows = float(by_row @ np.arange(img.shape[0], dtype=by_row.dtype)) / total
    cols = float(img.sum(0) @ np.arange(img.shape[1], dtype=by_row.dtype)) / total
    return rows, cols


def place(digit: np.ndarray) -> np.ndarray:
    """Put a digit (h, w <= 28) into 28x28 with its centre of mass at (14, 14), kept inside."""
    h, w = digit.shape
    cy, cx = centre_of_mass(digit)
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - w))
    out = np.zeros((SIDE, SIDE), np.float32)
    out[top : top + h, left : left + w] = digit
    return out
