"""Training digits rendered as uploads and framed by the service's own code (contract/photo.py).

`upload_like` (training/augment.py) imitates on the 28x28 frame what a photo does to a digit.
This goes the whole way instead: each training digit is drawn as a photo or scan would show it
(paper tone and uneven light, pen colour, stroke width, size in the picture, blur, sensor noise,
JPEG) and then read back by `contract.photo.to_frame`, the function every served upload goes
through, so the frames a model trains on carry the service's own framing and its artefacts.

Rendering costs milliseconds per digit, so a split is rendered once (one rendering per digit,
seeded, with progress) and kept in a cache folder; training swaps a share of each batch for the
rendered versions (`mnist train --augment-kind rendered --rendered-share 0.35`). The renderer is
this module's own: the evaluation's renderings (harness/uploads.py) are other code, drawn from
the test split.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

import contract.framing
import contract.photo
import contract.scene
from contract.framing import NoInk
from contract.photo import to_frame

log = logging.getLogger(__name__)

RENDER_VERSION = 1  # part of the cache key: bump when the drawing below changes
# Also in the key: the service's framing code, which reads each rendering back, so that a change
# there (a thinner marker stroke, say) re-renders instead of training on frames it no longer makes.
FRAMING = b"".join(
    Path(m.__file__).read_bytes() for m in (contract.framing, contract.photo, contract.scene) if m.__file__
)
INK_COLOURS = ((0.05, 0.05, 0.08), (0.1, 0.15, 0.55), (0.55, 0.08, 0.1), (0.1, 0.4, 0.15), (0.3, 0.3, 0.3))


def render(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One (28, 28) uint8 MNIST digit (white on black) -> an upload-like RGB or grey image."""
    # Size in the picture: from a small digit on a big sheet to a tight crop that it fills.
    side = int(rng.integers(40, 240))  # the service works at <= 384 px; bigger only costs time
    fill = float(rng.uniform(0.35, 0.95))  # the 28x28 frame's share of the picture's side
    frame_px = max(12, round(side * fill))
    big = Image.fromarray(digit, mode="L").resize((frame_px, frame_px), Image.Resampling.BICUBIC)
    big = big.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BICUBIC, fillcolor=0)
    # Stroke width: a marker (thicker), a fine pen (thinner), or as written.
    width = rng.random()
    if width < 0.35:
        grow = int(rng.integers(1, max(2, frame_px // 28 + 1)))  # up to one MNIST pixel each side
        big = big.filter(ImageFilter.MaxFilter(2 * min(grow, 4) + 1))
    elif width < 0.45 and frame_px >= 84:
        big = big.filter(ImageFilter.MinFilter(3))
    layer = Image.new("L", (side, side), 0)
    slack = side - frame_px
    layer.paste(big, (int(rng.integers(0, slack + 1)), int(rng.integers(0, slack + 1))))
    ink = np.clip((np.asarray(layer, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)  # firmer pen edges
    ink *= float(rng.uniform(0.6, 1.0))  # pencil to felt pen
    # Paper and light: a tone, a tilt across the sheet, and a vignette.
    yy, xx = np.ogrid[0:side, 0:side]
    yy, xx = (yy / side - 0.5).astype(np.float32), (xx / side - 0.5).astype(np.float32)
    tilt = rng.uniform(-0.2, 0.2, 2)
    light = 1.0 + tilt[0] * xx + tilt[1] * yy - float(rng.uniform(0, 0.6)) * (xx * xx + yy * yy)
    paper = np.asarray(rng.uniform(0.7, 1.0) - rng.uniform(0, 0.08, 3), np.float32)  # (3,), a tint
    pen = np.asarray(INK_COLOURS[int(rng.integers(len(INK_COLOURS)))], np.float32)
    if rng.random() < 0.1:  # chalk on a board: light ink on a dark surface
        paper, pen = paper * 0.3, np.full(3, 0.9, np.float32)
    rgb = (paper * (1 - ink[..., None]) + pen * ink[..., None]) * light[..., None]  # (side, side, 3)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:  # out of focus, or just soft
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.2, 1.0)) * frame_px / 28))
    arr = np.asarray(img, np.float32)
    arr += rng.standard_normal(arr.shape, np.float32) * float(rng.uniform(0, 12))  # sensor noise
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.2:  # a scan or a grey export
        img = img.convert("L")
    if rng.random() < 0.15:  # a thumbnail: far fewer pixels than the digit deserves
        small = int(rng.integers(20, 40))
        img = img.resize((small, small), Image.Resampling.BILINEAR)
    if rng.random() < 0.6:  # most photos arrive as JPEG
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(30, 95)))
        img = Image.open(io.BytesIO(buf.getvalue()))
        img.load()
    return img


def rendered_frame(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(28, 28) uint8 digit -> (28, 28) uint8: rendered as an upload, then framed as served."""
    return _framed(render(digit, rng), digit)


def _framed(photo: Image.Image, digit: np.ndarray) -> np.ndarray:
    """The photo's served frame as uint8; a photo the framing finds no ink in (a faint pencil on
    a dark photo) keeps the digit it was drawn from."""
    try:
        return np.round(to_frame(photo) * 255).astype(np.uint8)
    except NoInk:
        return digit


def sample_sheet(digits: np.ndarray, path: Path, seed: int = 0, cell: int = 96) -> Path:
    """A PNG of what rendered training looks like: each digit (top), its photo (middle) and the
    frame the service makes of it (bottom); the same draws as rendered_frames' first chunk."""
    rng = np.random.default_rng([seed, 0])
    sheet = Image.new("RGB", (cell * len(digits), cell * 3), "white")
    for i, digit in enumerate(digits):
        photo = render(digit, rng)
        for row, img in enumerate((Image.fromarray(digit), photo, Image.fromarray(_framed(photo, digit)))):
            sheet.paste(
                img.convert("RGB").resize((cell - 4, cell - 4), Image.Resampling.NEAREST),
                (i * cell + 2, row * cell + 2),
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def cache_dir() -> Path:
    """$MNIST_CACHE_DIR, else ~/.cache/mnist-service (XDG_CACHE_HOME honoured)."""
    if os.environ.get("MNIST_CACHE_DIR"):
        return Path(os.environ["MNIST_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-service"


CHUNK = 500  # digits per seeded draw: the same renderings whatever the number of processes


def _render_chunk(digits: np.ndarray, seed: int, chunk: int) -> np.ndarray:
    rng = np.random.default_rng([seed, chunk])
    return np.stack([rendered_frame(d, rng) for d in digits])


def rendered_frames(digits: np.ndarray, seed: int = 0, cache: Path | None = None, processes: int = 0) -> np.ndarray:
    """(N, 28, 28) uint8 -> each digit's rendered frame, (N, 28, 28) uint8; cached by content.

    processes: 0 for one per CPU core. About 12 ms per digit on one core here.
    """
    key = hashlib.sha256(digits.tobytes() + f"{seed}/{RENDER_VERSION}".encode() + FRAMING).hexdigest()[:16]
    path = (cache or cache_dir()) / f"rendered-{key}.npy"
    if path.exists():
        log.info("rendered uploads from %s", path)
        return np.load(path)
    out = np.empty_like(digits)
    starts = range(0, len(digits), CHUNK)
    bar = tqdm(total=len(digits), desc="rendering digits as uploads", unit="digit", dynamic_ncols=True)
    with ProcessPoolExecutor(processes or os.cpu_count() or 1) as pool:
        jobs = {pool.submit(_render_chunk, digits[i : i + CHUNK], seed, i // CHUNK): i for i in starts}
        for job, i in jobs.items():
            out[i : i + CHUNK] = job.result()
            bar.update(min(CHUNK, len(digits) - i))
    bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)  # whole or absent: two runs starting at once may both render, never half-read
    log.info("rendered %d digits as uploads into %s", len(digits), path)
    return out
