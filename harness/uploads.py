"""MNIST test digits as the uploads people really send: photos, pen on paper, canvas exports.

numpy + Pillow only, so the load tests, the deployed-model tests and the service's own
tests can share one set of realistic inputs without importing torch.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from harness.scenes import SCENES as _SCENES
from harness.scenes import render_scene

_ORIENTATION_TAG = 0x0112

# Every kind below must stay something a person reads at a glance: these are realistic
# uploads, not adversarial ones.
RENDERINGS: tuple[str, ...] = (
    "png28",  # MNIST as-is: 28x28 greyscale PNG, white digit on black
    "photo",  # phone photo of ink on paper: 200-800 px RGB JPEG, uneven light, sensor noise
    "pen_rgb",  # coloured pen on white paper, RGB PNG
    "canvas_rgba",  # HTML canvas export: black strokes on a transparent background
    "jpeg_lowq",  # heavily compressed JPEG (messaging apps)
    "gif_palette",  # palette GIF with a handful of colours
    "bmp",  # MS Paint style 24-bit BMP
    "webp",  # lossy WebP from a browser
    "tiff",  # greyscale scan, LZW-compressed TIFF
    "exif_rotated",  # phone JPEG whose pixels are stored rotated, with an EXIF orientation tag
    "small_offcentre",  # photo of a big sheet with a small digit somewhere off-centre
    "large_fill",  # digit cropped tight so that it fills the frame
    # Harder photos, after the others so that their seeded draws stay as they were:
    "thick_marker",  # felt marker: strokes 2-3x MNIST's, the digit about half the photo
    "tight_crop",  # the same marker, cropped so that the digit fills about 90% of the image
    "heavy_blur",  # an out-of-focus photo: blur about a stroke's width, uneven light, noise
    "pencil_noisy",  # pencil in a dim room: grey strokes, dark corners, strong sensor noise
)
HARD: tuple[str, ...] = ("thick_marker", "tight_crop", "heavy_blur", "pencil_noisy")
# The everyday kinds (the deployed and load tests' 99% set); HARD is measured beside them.
PHOTO_LIKE: tuple[str, ...] = tuple(k for k in RENDERINGS if k != "png28" and k not in HARD)
# The digit photographed in a scene (harness/scenes.py): a sheet on a table, shadows, ruled
# paper, form boxes, a whiteboard. A group of their own, so that no earlier draw changes.
SCENES: tuple[str, ...] = _SCENES

_PEN_COLOURS = ((20, 40, 160), (170, 20, 30), (20, 110, 40), (60, 20, 120), (10, 10, 10))


@dataclass(frozen=True)
class Upload:
    """One rendered test digit: what a client would POST and what the answer must be."""

    data: bytes
    content_type: str
    label: int
    kind: str
    index: int  # position in the MNIST split


# --- drawing helpers: everything is "ink coverage" in [0, 1] on a canvas, then composited ---


def _ink(
    digit28: np.ndarray,
    canvas_hw: tuple[int, int],
    frame: int,
    top_left: tuple[int, int],
    angle: float = 0.0,
) -> np.ndarray:
    """Ink coverage (H, W) float32 in [0, 1]: the 28x28 frame scaled to `frame` px and placed."""
    big = Image.fromarray(digit28, mode="L").resize((frame, frame), Image.Resampling.BICUBIC)
    if angle:
        big = big.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=0)
    layer = Image.new("L", (canvas_hw[1], canvas_hw[0]), 0)
    layer.paste(big, (top_left[1], top_left[0]))
    ink = np.asarray(layer, dtype=np.float32) / 255.0
    # Upscaled MNIST strokes are soft; real pen strokes have firmer edges.
    return np.clip((ink - 0.1) / 0.6, 0.0, 1.0)


def _centred(
    digit28: np.ndarray, size: int, fill: float, rng: np.random.Generator, jitter: float, angle_max: float = 0.0
) -> np.ndarray:
    """Ink for a square `size` canvas whose 28-px frame covers `fill` of it, shifted a little."""
    frame = max(28, int(size * fill))
    slack = size - frame
    dy, dx = (rng.uniform(-jitter, jitter, 2) * slack / 2).astype(int)
    angle = float(rng.uniform(-angle_max, angle_max)) if angle_max else 0.0
    return _ink(digit28, (size, size), frame, (slack // 2 + dy, slack // 2 + dx), angle)


def _lighting(hw: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A soft light gradient plus vignette (H, W) in [1 - strength, 1], like a desk lamp."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1), xx / max(w - 1, 1)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta)  # in about [-0.7, 0.7]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    vignette = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2  # 0 centre .. 1 corners
    return 1.0 - strength * (0.7 * ramp + 0.3 * vignette)


def _on_paper(
    ink: np.ndarray,
    rng: np.random.Generator,
    ink_rgb: Sequence[float] = (25, 25, 30),
    paper_rgb: Sequence[float] | None = None,
    light: float = 0.0,
    noise: float = 0.0,
) -> np.ndarray:
    """Composite ink onto paper: (H, W, 3) uint8, with optional uneven light and sensor noise."""
    if paper_rgb is None:
        base = rng.uniform(215, 250)
        paper_rgb = (base, base - rng.uniform(0, 8), base - rng.uniform(0, 18))  # warm white
    paper = np.asarray(paper_rgb, np.float32)
    pen = np.asarray(ink_rgb, np.float32)
    img = paper * (1.0 - ink[..., None]) + pen * ink[..., None]  # (H, W, 3)
    if light:
        img *= _lighting(ink.shape, rng, light)[..., None]
    if noise:
        img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _photo(digit28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone photo of a digit on paper: (H, W, 3) uint8, 200-800 px, a little tilted."""
    size = int(rng.integers(200, 801))
    ink = _centred(digit28, size, rng.uniform(0.6, 0.85), rng, jitter=0.5, angle_max=5.0)
    return _on_paper(ink, rng, light=rng.uniform(0.1, 0.3), noise=rng.uniform(2.0, 6.0))


def _marker(digit28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit written with a felt marker: (112, 112) uint8, strokes dilated 2-3x, ends rounded."""
    big = Image.fromarray(digit28, mode="L").resize((112, 112), Image.Resampling.BICUBIC)
    width = int(rng.choice([7, 9, 11]))  # MNIST's strokes are ~8-10 px at this scale
    thick = big.filter(ImageFilter.MaxFilter(width)).filter(ImageFilter.GaussianBlur(1.5))
    return np.asarray(thick, np.uint8)


def _tight_square(digit: np.ndarray, margin: float) -> np.ndarray:
    """The ink's bounding box centred in a square `margin` times its longer side (uint8)."""
    ys, xs = np.nonzero(digit > 30)
    if ys.size == 0:
        raise ValueError("this rendering needs a digit with ink in it")
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = round(max(crop.shape) * margin)
    square = np.zeros((side, side), np.uint8)
    oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
    return square


def _photo_of(square: np.ndarray, size: int, rng: np.random.Generator, blur: float = 0.0) -> bytes:
    """A square ink image (uint8) photographed: size px, uneven light, noise, optional blur, JPEG."""
    big = Image.fromarray(square, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    ink = np.clip((np.asarray(big, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)
    rgb = Image.fromarray(_on_paper(ink, rng, light=rng.uniform(0.1, 0.3)))
    if blur:
        rgb = rgb.filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(rgb, np.float32) + rng.normal(0.0, rng.uniform(2.0, 6.0), (size, size, 3))
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return _encode(img, "JPEG", quality=int(rng.integers(75, 93)))


# --- one function per kind: digit (28, 28) uint8 + the shared rng -> (file bytes, content type) ---
# Each draws from `rng` in a fixed order, so a seed renders the same bytes: the seeded sets that
# tests and benchmarks measure stay the same sets. Reordering a draw changes every later upload.

Renderer = Callable[[np.ndarray, np.random.Generator], tuple[bytes, str]]


def _pen(rng: np.random.Generator) -> tuple[int, int, int]:
    return _PEN_COLOURS[int(rng.integers(len(_PEN_COLOURS)))]


def _png28(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    return _encode(Image.fromarray(digit28, mode="L"), "PNG"), "image/png"


def _photo_jpeg(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    img = Image.fromarray(_photo(digit28, rng))
    return _encode(img, "JPEG", quality=int(rng.integers(80, 93))), "image/jpeg"


def _pen_rgb(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.integers(150, 401))
    ink = _centred(digit28, size, rng.uniform(0.7, 0.9), rng, jitter=0.4)
    rgb = _on_paper(ink, rng, _pen(rng), (255, 255, 255))
    return _encode(Image.fromarray(rgb), "PNG"), "image/png"


def _canvas_rgba(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.choice([200, 280, 300, 400]))
    ink = _centred(digit28, size, rng.uniform(0.75, 0.95), rng, jitter=0.3)
    rgba = np.zeros((size, size, 4), np.uint8)  # transparent pixels are (0, 0, 0, 0)
    rgba[..., 3] = np.round(ink * 255).astype(np.uint8)  # black strokes, alpha = coverage
    return _encode(Image.fromarray(rgba, mode="RGBA"), "PNG"), "image/png"


def _jpeg_lowq(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.integers(120, 321))
    ink = _centred(digit28, size, rng.uniform(0.7, 0.9), rng, jitter=0.4)
    img = Image.fromarray(_on_paper(ink, rng, light=0.1, noise=3.0))
    return _encode(img, "JPEG", quality=int(rng.integers(25, 46))), "image/jpeg"


def _gif_palette(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.integers(100, 301))
    ink = _centred(digit28, size, rng.uniform(0.7, 0.9), rng, jitter=0.4)
    rgb = Image.fromarray(_on_paper(ink, rng, _pen(rng), (250, 250, 245)))
    colours = int(rng.choice([4, 8, 16]))
    img = rgb.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    return _encode(img, "GIF"), "image/gif"


def _bmp(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.integers(100, 301))
    ink = _centred(digit28, size, rng.uniform(0.75, 0.95), rng, jitter=0.3)
    rgb = _on_paper(ink, rng, (0, 0, 0), (255, 255, 255))
    return _encode(Image.fromarray(rgb), "BMP"), "image/bmp"


def _webp(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    img = Image.fromarray(_photo(digit28, rng))
    return _encode(img, "WEBP", quality=int(rng.integers(60, 91))), "image/webp"


def _tiff(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    size = int(rng.integers(200, 601))
    ink = _centred(digit28, size, rng.uniform(0.6, 0.85), rng, jitter=0.5)
    grey = _on_paper(ink, rng, (20, 20, 20), (240, 240, 240), noise=2.0)[..., 0]
    img = Image.fromarray(grey, mode="L")
    return _encode(img, "TIFF", compression="tiff_lzw"), "image/tiff"


_TURN_BACK = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _exif_rotated(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    upright = Image.fromarray(_photo(digit28, rng))
    # Stored pixels are the upright picture turned; the tag says how to turn it back.
    orientation = int(rng.choice([3, 6, 8]))
    stored = upright.transpose(_TURN_BACK[orientation])
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = orientation
    return _encode(stored, "JPEG", quality=90, exif=exif.tobytes()), "image/jpeg"


def _small_offcentre(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    h, w = int(rng.integers(400, 641)), int(rng.integers(400, 641))
    frame = int(rng.integers(70, 111))
    corner = (int(rng.integers(10, h - frame - 10)), int(rng.integers(10, w - frame - 10)))
    ink = _ink(digit28, (h, w), frame, corner)
    img = Image.fromarray(_on_paper(ink, rng, light=0.15, noise=3.0))
    return _encode(img, "JPEG", quality=int(rng.integers(80, 93))), "image/jpeg"


def _large_fill(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    square = _tight_square(digit28, 1.08)  # a thin margin so no stroke is cut
    size = int(rng.integers(200, 501))
    big = Image.fromarray(square, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    ink = np.clip((np.asarray(big, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)
    img = Image.fromarray(_on_paper(ink, rng, light=0.15, noise=3.0))
    return _encode(img, "JPEG", quality=90), "image/jpeg"


def _thick_marker(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """The digit's box fills about half the photo."""
    square = _tight_square(_marker(digit28, rng), rng.uniform(1.8, 2.2))
    return _photo_of(square, int(rng.integers(200, 601)), rng), "image/jpeg"


def _tight_crop(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """The digit's box fills about 90% of the image."""
    square = _tight_square(_marker(digit28, rng), rng.uniform(1.05, 1.15))
    return _photo_of(square, int(rng.integers(150, 501)), rng), "image/jpeg"


def _heavy_blur(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Out of focus: Gaussian sigma 6-9% of the digit box (about a stroke width)."""
    size = int(rng.integers(200, 601))
    square = _tight_square(digit28, rng.uniform(1.3, 1.7))
    box = size / square.shape[0] * 20  # the digit's box in px in the photo
    return _photo_of(square, size, rng, blur=box * rng.uniform(0.06, 0.09)), "image/jpeg"


def _pencil_noisy(digit28: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """A phone's high ISO: noise the camera did not smooth away."""
    size = int(rng.integers(200, 501))
    ink = _centred(digit28, size, rng.uniform(0.5, 0.8), rng, jitter=0.5, angle_max=5.0) * 0.8
    base = rng.uniform(175, 215)
    grey = int(rng.integers(70, 100))
    rgb = _on_paper(ink, rng, (grey, grey, grey + 6), (base, base - 4, base - 12), light=rng.uniform(0.3, 0.45))
    noisy = rgb.astype(np.float32) + rng.normal(0.0, rng.uniform(8.0, 14.0), rgb.shape)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return _encode(img, "JPEG", quality=int(rng.integers(70, 91))), "image/jpeg"


_RENDERERS: dict[str, Renderer] = {
    "png28": _png28,
    "photo": _photo_jpeg,
    "pen_rgb": _pen_rgb,
    "canvas_rgba": _canvas_rgba,
    "jpeg_lowq": _jpeg_lowq,
    "gif_palette": _gif_palette,
    "bmp": _bmp,
    "webp": _webp,
    "tiff": _tiff,
    "exif_rotated": _exif_rotated,
    "small_offcentre": _small_offcentre,
    "large_fill": _large_fill,
    "thick_marker": _thick_marker,
    "tight_crop": _tight_crop,
    "heavy_blur": _heavy_blur,
    "pencil_noisy": _pencil_noisy,
}
assert tuple(_RENDERERS) == RENDERINGS, "every rendering kind has its renderer, in RENDERINGS' order"


def render(digit28: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """Turn one MNIST digit into the file bytes and content type of a realistic upload."""
    if digit28.shape != (28, 28) or digit28.dtype != np.uint8:
        raise ValueError(f"expected a (28, 28) uint8 digit, got {digit28.shape} {digit28.dtype}")
    if kind in _RENDERERS:
        return _RENDERERS[kind](digit28, rng)
    if kind in SCENES:
        return render_scene(digit28, kind, rng), "image/jpeg"
    raise ValueError(f"unknown rendering {kind!r}; known: {', '.join((*RENDERINGS, *SCENES))}")


def sample_uploads(
    images: np.ndarray,
    labels: np.ndarray,
    kinds: Sequence[str] = PHOTO_LIKE,
    per_kind: int = 100,
    seed: int = 0,
) -> Iterator[Upload]:
    """A fixed, seeded set of uploads: `per_kind` different test digits rendered as each kind."""
    rng = np.random.default_rng(seed)
    for kind in kinds:
        for index in rng.choice(len(images), size=per_kind, replace=False):
            data, content_type = render(images[index], kind, rng)
            yield Upload(data, content_type, int(labels[index]), kind, int(index))


# --- other writers: the UCI digits bundled with scikit-learn (8x8, 0-16 per cell) ---


def png_8x8(cells: np.ndarray, size: int = 64) -> bytes:
    """An 8x8 UCI digit (ink counts 0-16, white on black) upscaled bilinearly to a clean PNG."""
    grey = np.round(np.asarray(cells, np.float32) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return _encode(Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.BILINEAR), "PNG")


def mnist_as_8x8(digit28: np.ndarray) -> np.ndarray:
    """An MNIST digit reduced the UCI way: 32x32 bitmap, ink pixels counted in 4x4 blocks: (8, 8) 0-16."""
    bitmap = np.asarray(Image.fromarray(digit28, mode="L").resize((32, 32), Image.Resampling.BILINEAR)) > 127
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32)
