"""Any upright image -> the 28x28 frame: a photo turned into ink, then framed (contract.framing).

Alpha flattened, polarity found, colour pens and uneven light evened out, the digit picked out
of a scene when the photo shows more than the digit (contract/scene.py), then MNIST's own
framing. The service reads every upload with it (service/preprocess.py adds its refusals and a
fast path for batches of 28x28 frames); training renders digits as uploads and frames them with
it (training/rendered.py), so that what the model learns from went through exactly what a
served upload goes through. numpy and Pillow; OpenCV in the scene stage.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from contract import scene
from contract.framing import BOX, CENTRE, SIDE, NoInk, centre_of_mass, crop_mask, frame
from contract.framing import blocks as _blocks
from contract.framing import peak as _peak
from contract.framing import resize as _resize

Image_ = Image.Image | np.ndarray  # a PIL image, or (H, W[, C]) uint8

WORK_LONG_SIDE = 384  # enough pixels for a 20x20 digit even when it is small in a big photo
BACKGROUND_LONG_SIDE = 32  # lighting is smooth: estimate it on a coarse grid
MIN_CONTRAST = 0.12  # ink must differ from the paper by this much (fraction of full scale)


def to_frame(img: Image_) -> np.ndarray:
    """(28, 28) float32 in [0, 1], white digit on black, as the model was trained on; NoInk if
    the image shows no ink.

    img: a PIL image, or a uint8 array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA (a
    2-channel array is read as grey and alpha).
    """
    rgb = _as_float(_small(img))  # (h, w, C) float32 in [0, 1], C = 1 or 3, h, w <= 384
    if rgb.shape[:2] == (SIDE, SIDE):
        ready = already_mnist(rgb)
        if ready is not None:
            return ready
    ink, found, crop = _scene_of(rgb)
    if found is not None:
        return frame(found.ink)
    return frame(ink) if crop is None else frame(ink, *crop)


def digit_ink(rgb: np.ndarray) -> np.ndarray:
    """(h, w, C) float pixels -> (h, w) ink of the digit alone: the ink map itself when it is
    already one plain cluster (the usual upload: nothing more to pay), else the scene stage's
    choice (contract/scene.py), else the ink map as it is."""
    ink, found, _ = _scene_of(rgb)
    return ink if found is None else found.ink


def kept_region(img: Image_) -> np.ndarray:
    """The upload at working size, (h, w, 3) uint8 RGB, with what to_frame kept drawn on it:
    the writing surface in green when the scene stage found one, the digit's box in red.
    NoInk as to_frame."""
    rgb = _as_float(_small(img))  # (h, w, C) float32 in [0, 1]
    ink, found, crop = _scene_of(rgb)
    if found is not None:
        box = found.box
    else:
        mask = crop_mask(ink) if crop is None else crop[0]  # what framing crops to: noise pixels left out
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            raise NoInk("no ink to frame")
        box = (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    view = np.ascontiguousarray(np.broadcast_to(rgb, (*rgb.shape[:2], 3)) * 255.0).astype(np.uint8)
    return scene.draw(view, None if found is None else found.surface, box)


def _scene_of(rgb: np.ndarray) -> tuple[np.ndarray, scene.Scene | None, tuple[np.ndarray, float] | None]:
    """The ink map, the scene stage's finding when the ink map is not a plain digit, and the
    ink map's crop mask and peak (framing.crop_mask, framing.peak) when the plain check made
    them: framing reuses them."""
    dark = is_dark_ink(rgb)
    ink = ink_map(rgb, dark)
    # light "ink" on a bright sheet is the sheet itself, seen on a darker table
    sheet = not dark and scene.bright_surface(rgb.mean(-1))
    if sheet:
        return ink, find_scene(rgb, True), None
    if not dark:  # light ink on a dark ground is no scene
        return ink, None, None
    top = _peak(ink)
    mask = crop_mask(ink, top)
    plain = scene.plain_mask(ink, mask, top)  # the mask less far specks of noise
    if plain is not None:
        return ink, None, (plain, top)
    return ink, find_scene(rgb, True), (mask, top)


def find_scene(rgb: np.ndarray, dark: bool) -> scene.Scene | None:
    """The scene stage on (h, w, C) float pixels, on their darkest channel (a coloured pen
    shows most there) with the ink made dark if it is light."""
    channels = [rgb[..., c] for c in range(rgb.shape[-1])]  # faster than rgb.min(-1), a strided reduction
    return scene.find_digit(np.minimum.reduce(channels) if dark else 1.0 - np.maximum.reduce(channels))


def _as_float(img: Image_) -> np.ndarray:
    """Pixels as (H, W, C) float32 in [0, 1], C = 1 (grey) or 3 (colour), alpha flattened."""
    if isinstance(img, np.ndarray):  # decode's uint8 (H, W[, C]); C = 2 or 4 has alpha
        return _channels(img.astype(np.float32) / 255.0, img.ndim == 3 and img.shape[-1] in (2, 4))
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img.convert("F") if img.mode != "F" else img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        return np.clip(arr / top, 0.0, 1.0)[..., None]
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")
    return _channels(np.asarray(img, dtype=np.float32) / 255.0, img.mode in ("LA", "RGBA"))


def _channels(arr: np.ndarray, alpha: bool) -> np.ndarray:
    """(H, W) or (H, W, C) floats -> (H, W, 1 or 3), the last channel flattened if alpha."""
    if arr.ndim == 2:
        return arr[..., None]
    if alpha:
        return _flatten_alpha(arr[..., :-1], arr[..., -1])
    return arr


def _flatten_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto whichever of white or black the visible strokes contrast with."""
    if alpha.min() > 0.98:
        return colour
    weight = alpha.sum()
    visible = float((colour.mean(-1) * alpha).sum() / weight) if weight > 0 else 0.0
    paper = 1.0 if visible < 0.5 else 0.0  # black strokes on a transparent canvas -> white paper
    a = alpha[..., None]
    return colour * a + paper * (1.0 - a)


def already_mnist(pixels: np.ndarray) -> np.ndarray | None:
    """A 28x28 digit already framed like MNIST, used as is: resampling would only blur it.

    service.images.preprocess.mnist_frames decides the same for a batch, by the same FRAME_*
    constants; numpy's per-call overhead would make that batch version cost 2x for one image
    (tests check that both decide alike on every MNIST test digit).
    """
    grey = pixels[..., 0] if pixels.shape[-1] == 1 else pixels.mean(-1)
    border = grey[BORDER]
    if np.count_nonzero(border <= FRAME_DARK) * 2 > border.size:  # mostly black surround: MNIST
        pass
    elif np.count_nonzero(border >= FRAME_LIGHT) * 2 > border.size:  # dark on light: same frame
        grey = 1.0 - grey
    else:
        return None  # no clean surround: not an MNIST frame
    mask = grey > FRAME_DARK
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        raise NoInk("no ink in the 28x28 frame")
    if max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 > FRAME_SPAN:
        return None
    cy, cx = centre_of_mass(grey)
    if abs(cy - CENTRE) > FRAME_CENTRED or abs(cx - CENTRE) > FRAME_CENTRED:
        return None
    return np.ascontiguousarray(grey, dtype=np.float32)


BORDER = np.ones((SIDE, SIDE), bool)  # a 28x28 frame's outermost pixels
BORDER[1:-1, 1:-1] = False
# An MNIST frame already: its border mostly dark (<= FRAME_DARK) or mostly light (>= FRAME_LIGHT),
# its ink (> FRAME_DARK) at most FRAME_SPAN px across, its centre of mass within FRAME_CENTRED px
# of the frame's centre. already_mnist and the service's batch version both decide by these.
FRAME_DARK, FRAME_LIGHT, FRAME_SPAN, FRAME_CENTRED = 0.1, 0.9, BOX + 2, 1.0


def _small(img: Image_) -> Image_:
    """Box-average big images down to a working size, in 8 bits before any float copy:
    cheaper, it averages out noise, and a 16 MP upload never becomes a 256 MB float array.
    Each side is reduced by at most its own length, so a 2000x1 image stays 1 pixel high."""
    if isinstance(img, np.ndarray):
        h, w = img.shape[:2]
    else:
        w, h = img.size
    factor = -(-max(h, w) // WORK_LONG_SIDE)  # ceil, in ints: this runs for every upload
    if factor <= 1:
        return img
    fx, fy = min(factor, w), min(factor, h)
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)  # (H, W[, C]) uint8 -> L, LA, RGB or RGBA
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode.startswith("I;16"):
        img = img.convert("F")  # 16-bit: _as_float reads F above 255 as 0-65535
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")
    # box crops to whole blocks, as MNIST's own averaging would
    return img.reduce((fx, fy), box=(0, 0, w // fx * fx, h // fy * fy))


def _window(a: np.ndarray, k: int, reduce: str) -> np.ndarray:
    """k x k sliding max/min/mean/median of a small 2-D array, edges padded by repetition."""
    padded = np.pad(a, k // 2, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k))  # (h, w, k, k)
    return getattr(np, reduce)(windows, axis=(-2, -1))


def _background(pixels: np.ndarray, how: str) -> np.ndarray:
    """The paper without the ink, lighting included: the paper-ward of two coarse estimates.

    how: "max" (dark ink on light paper) or "min". A 7x7 rank filter follows the light closely
    but only erases strokes narrower than its window: inside wider solid ink (a marker, a tight
    crop) it returns ink. A smooth surface fitted to the paper alone (`_paper_surface`) does not
    care how much of the image the ink covers. Taking whichever is nearer the paper keeps both.
    """
    h, w = pixels.shape[:2]
    scale = BACKGROUND_LONG_SIDE / max(h, w)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    sign = 1.0 if how == "max" else -1.0  # work as if the paper were the bright side
    planes = []
    for c in range(pixels.shape[-1]):
        coarse = _resize(pixels[..., c], small, Image.Resampling.BOX)
        rank = _window(_window(coarse, 7, how), 5, "mean")
        surface = _paper_surface(sign * coarse)
        if surface is not None:
            rank = sign * np.maximum(sign * rank, surface - SURFACE_MARGIN)
        planes.append(_resize(rank.astype(np.float32), (w, h), Image.Resampling.BILINEAR))
    return np.stack(planes, axis=-1)


SURFACE_MARGIN = 0.03  # the fitted paper sits this far inside it: fit error never reads as ink


def _paper_surface(bright: np.ndarray) -> np.ndarray | None:
    """A quadratic lighting surface fitted to the paper (the bright side) of a coarse plane.

    Iteratively reweighted: each pass drops the pixels well below the last fit (ink, whatever
    its share), starting from the brightest third; a plane first, then the quadratic that a
    lamp's fall-off and vignette need. None when the plane is too small to fit.
    """
    h, w = bright.shape
    if h * w < 24 or min(h, w) < 3:
        return None
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy, xx = yy.ravel() / max(h - 1, 1) - 0.5, xx.ravel() / max(w - 1, 1) - 0.5
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=1)  # (h*w, 6)
    values = bright.ravel().astype(np.float64)
    keep = values >= np.percentile(values, 67)
    for terms in (3, 3, 6, 6, 6, 6):
        coef, *_ = np.linalg.lstsq(design[keep, :terms], values[keep], rcond=None)
        residual = values - design[:, :terms] @ coef
        spread = 1.4826 * float(np.median(np.abs(residual[keep])))  # robust sigma of the paper
        keep = residual > -max(3.0 * spread, 0.04)
    return (design[:, :terms] @ coef).reshape(h, w)


def is_dark_ink(pixels: np.ndarray) -> bool:
    """Polarity: is the ink darker than the paper? The paper is read from the image's edges (a
    tight crop of a marker digit can be mostly ink, but its rim is mostly paper), and the ink is
    whichever extreme lies farther from it (per channel, for coloured pens)."""
    grid = _blocks(pixels)  # (h, w, C)
    blocks = grid.reshape(-1, pixels.shape[-1])  # (n, C)
    paper = np.median(_rim(grid), axis=0)
    darker = float((paper - blocks.min(axis=0)).max())
    lighter = float((blocks.max(axis=0) - paper).max())
    return darker >= lighter


def _rim(grid: np.ndarray) -> np.ndarray:
    """The outer eighth of a (h, w, C) grid on each side, as (n, C); all of it when it is tiny."""
    h, w = grid.shape[:2]
    if h < 8 or w < 8:
        return grid.reshape(-1, grid.shape[-1])
    ry, rx = max(1, h // 8), max(1, w // 8)
    rim = np.ones((h, w), bool)
    rim[ry:-ry, rx:-rx] = False
    return grid[rim]


def ink_map(pixels: np.ndarray, dark_ink: bool | None = None) -> np.ndarray:
    """How far each pixel is from the local paper colour, towards the ink: (H, W) float32.
    dark_ink: the polarity when the caller knows it already (is_dark_ink)."""
    if dark_ink is None:
        dark_ink = is_dark_ink(pixels)
    background = _background(pixels, "max" if dark_ink else "min")
    diff = background - pixels if dark_ink else pixels - background
    ink = np.clip(diff, 0.0, None).max(-1)  # (H, W): a coloured pen shows most in one channel
    if _peak(ink) < MIN_CONTRAST:
        raise NoInk("too little contrast to show a digit")
    return ink
