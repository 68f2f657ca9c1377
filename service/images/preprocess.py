"""Any upright image -> the 28x28 white-on-black frame MNIST was made with, or a clear 422.

The recipe itself (a photo turned into ink, then MNIST's framing) lives in contract/photo.py,
shared with training; here it gets the service's refusal (a BadInput naming what is accepted)
and a fast path for batches of uploads that are 28x28 frames already.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from contract import number as number_reader
from contract import photo
from contract.framing import CENTRE, SIDE, NoInk
from contract.framing import centre_of_mass as centre_of_mass
from contract.framing import place as place  # tests and callers reach it here too
from contract.number import Classify, Number
from contract.photo import BORDER, FRAME_CENTRED, FRAME_DARK, FRAME_LIGHT, FRAME_SPAN
from service.errors import ACCEPTED_NUMBER, BadInput
from service.images.decode import Decoded

NO_INK = "no ink found: the image is blank or has too little contrast to show a digit"
ACCEPTED_INK = "an image of one handwritten digit, darker or lighter than its background"


def to_mnist(img: Decoded) -> np.ndarray:
    """(28, 28) float32 in [0, 1], white digit on black, as the model was trained on.

    img: a PIL image, or decode's uint8 array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA
    (a 2-channel array is read as grey and alpha). A 422 BadInput when it shows no ink.
    """
    try:
        return photo.to_frame(img)
    except NoInk:
        raise BadInput(NO_INK, ACCEPTED_INK, 422) from None


def read_number(img: Decoded, classify: Classify, threshold: float, max_digits: int) -> Number:
    """contract.number.read_number with the service's refusals: 422 for an upload with no ink,
    and 422 naming the limit for one with more than max_digits digits."""
    accepted = ACCEPTED_NUMBER.format(max_digits=max_digits)
    try:
        return number_reader.read_number(img, classify, threshold, max_digits)
    except NoInk:
        raise BadInput(NO_INK, accepted, 422) from None
    except number_reader.TooManyDigits as exc:
        raise BadInput(str(exc), accepted, 422) from None


def region(img: Decoded) -> np.ndarray:
    """The upload at working size, (h, w, 3) uint8 RGB, with the region that to_mnist kept
    drawn on it (contract.photo.kept_region); a 422 BadInput when it shows no ink."""
    try:
        return photo.kept_region(img)
    except NoInk:
        raise BadInput(NO_INK, ACCEPTED_INK, 422) from None


def to_mnist_many(images: Iterable[Decoded]) -> np.ndarray:
    """to_mnist over a batch: (n, 28, 28) float32, the same pixels as one call per image.

    Images are framed as they come, so that an iterator that decodes them holds one big image
    at a time. 28x28 greyscale uploads (programmatic clients' usual batch) are kept and checked
    together, which costs a few microseconds per image instead of tens; the others go through
    to_mnist. A refused image fails the batch with a BadInput that names its position, images[i].
    """
    framed: list[np.ndarray | None] = []
    quick: list[int] = []
    raw: list[bytes] = []
    for i, img in enumerate(images):
        if _grey_mnist_sized(img):
            quick.append(i)
            raw.append(img.tobytes())  # PIL or numpy; faster than stacking
            framed.append(None)
            continue
        try:
            framed.append(to_mnist(img))
        except BadInput as exc:
            raise exc.at(i) from None
    out = np.empty((len(framed), SIDE, SIDE), np.float32)
    for i, one in enumerate(framed):
        if one is not None:
            out[i] = one
    if quick:
        grey = np.frombuffer(b"".join(raw), np.uint8).reshape(-1, SIDE, SIDE)
        frames, status = mnist_frames(grey.astype(np.float32) / 255.0)
        for j, i in enumerate(quick):
            if status[j] == READY:
                out[i] = frames[j]
                continue
            try:
                out[i] = to_mnist(grey[j])
            except BadInput as exc:
                raise exc.at(i) from None
    return out


def _grey_mnist_sized(img: Decoded) -> bool:
    """A 28x28 8-bit greyscale upload: a candidate for mnist_frames."""
    if isinstance(img, np.ndarray):
        return img.shape == (SIDE, SIDE)
    return img.mode == "L" and img.size == (SIDE, SIDE)


READY, REFRAME, BLANK = 0, 1, 2  # mnist_frames' verdicts


def mnist_frames(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of n 28x28 greys are MNIST frames already, all at once (a batch of uploads):
    contract.photo.already_mnist's decision, by its FRAME_* constants, over a batch (numpy's
    per-call overhead makes one call per image cost about five times as much).

    grey: (n, 28, 28) float32 in [0, 1]. Returns (frames, status): frames (n, 28, 28) float32,
    white on black, valid where status is READY; REFRAME: not MNIST-framed (no clean surround,
    digit too big or off-centre), to be framed by to_mnist; BLANK: a clean surround, no ink.
    """
    border = grey[:, BORDER]  # (n, 108)
    dark = (border <= FRAME_DARK).sum(1) * 2 > border.shape[1]  # mostly black surround: MNIST
    light = ~dark & ((border >= FRAME_LIGHT).sum(1) * 2 > border.shape[1])  # dark ink on light paper
    frames = grey.astype(np.float32)  # a copy
    if light.any():
        frames[light] = 1.0 - frames[light]
    mask = frames > FRAME_DARK
    rows, cols = np.any(mask, axis=2), np.any(mask, axis=1)  # (n, 28) each
    inked = rows.any(1)
    extent = np.maximum(_span(rows), _span(cols))
    by_row, by_col = frames.sum(2), frames.sum(1)  # (n, 28)
    total = np.maximum(by_row.sum(1), 1e-6).astype(np.float64)  # (blank frames sum to 0)
    cy = (by_row @ _INDEX).astype(np.float64) / total  # in float64, as centre_of_mass has it
    cx = (by_col @ _INDEX).astype(np.float64) / total
    offset = np.maximum(np.abs(cy - CENTRE), np.abs(cx - CENTRE))
    framed = dark | light
    ready = framed & inked & (extent <= FRAME_SPAN) & (offset <= FRAME_CENTRED)
    status = np.where(ready, READY, np.where(framed & ~inked, BLANK, REFRAME))
    return frames, status


_INDEX = np.arange(SIDE, dtype=np.float32)


def _span(any_ink: np.ndarray) -> np.ndarray:
    """(n, 28) booleans -> (n,) last minus first True index plus 1 (ignored where none)."""
    return SIDE - any_ink[:, ::-1].argmax(1) - any_ink.argmax(1)
