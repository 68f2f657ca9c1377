"""Mutation fuzz of the decoders, seeded from valid uploads of every format we accept.

Each mutant goes the way an upload goes (service.images.frames.read_frames: probe, budget, decode,
frame) and must come out as a frame in [0, 1] or a BadInput 4xx, never any other exception.
FUZZ_EXAMPLES sets how many mutants hypothesis tries (default 1500, about half a minute).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.mnist import data_dir, load_mnist
from harness.uploads import RENDERINGS, render
from service.errors import BadInput
from service.images.frames import Budget, read_frames

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),  # Pillow warns of what it mends
]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1500"))
# Small budgets: a mutated header that claims a huge image is refused (413) from the header;
# within them, a mutant costs milliseconds.
BUDGET = Budget(image_pixels=4_000_000, request_pixels=8_000_000, deadline=float("inf"))


@functools.cache
def seeds() -> list[bytes]:
    """One valid upload of each rendering (PNG, JPEG, BMP, GIF, WebP, TIFF and variants)."""
    images, _ = load_mnist(data_dir(), "test")
    rng = np.random.default_rng(7)
    return [render(images[i], kind, rng)[0] for i, kind in enumerate(RENDERINGS)]


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A valid upload with a few bytes flipped, inserted, deleted, repeated or cut."""
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(("flip", "set", "insert", "delete", "repeat", "cut")))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "set":  # boundary values land in sizes, lengths and counts
            data[at] = draw(st.sampled_from((0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif how == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
        else:
            del data[max(at, 1) :]
        if not data:
            break
    return bytes(data)


def _outcome(blobs: list[bytes]) -> np.ndarray | BadInput:
    try:
        return read_frames(blobs, BUDGET, "an image")
    except BadInput as exc:
        return exc


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutants())
def test_a_mutated_upload_is_framed_or_refused_with_a_4xx(data: bytes) -> None:
    out = _outcome([data])
    if isinstance(out, BadInput):
        assert 400 <= out.status < 500 and out.error and out.accepted
    else:
        assert out.shape == (1, 28, 28) and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@settings(
    max_examples=max(EXAMPLES // 10, 20),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(mutants(), min_size=2, max_size=4))
def test_a_batch_with_mutants_names_the_refused_image(blobs: list[bytes]) -> None:
    out = _outcome(blobs)
    if isinstance(out, BadInput):
        assert 400 <= out.status < 500
        assert out.error.startswith("images[") or "per request" in out.error
    else:
        assert out.shape == (len(blobs), 28, 28)


def test_seeds_are_read() -> None:
    """The fuzz starts from uploads that are read: a mutant is one step from a good image."""
    out = read_frames(seeds(), Budget(16_000_000, 64_000_000, float("inf")), "an image")
    assert out.shape == (len(RENDERINGS), 28, 28)
