"""Uploads -> the (N, 28, 28) frames the model reads: decode and frame, under a request's budgets.

Every image endpoint reads its images here, between transport (service.transport: bytes
and byte limits) and the model. The budgets hold before work: every header is read first, and a
request whose images would decode to more than its pixel budget is refused (413) before any
pixel is decoded. Work that costs little (a few 28x28 PNGs) runs where it is, on the event
loop; anything more runs in one of a worker's few decode threads, so that it cannot stall
health checks or the model's batches, and stops at the request's deadline.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
import numpy as np

from service.errors import BadInput, overloaded, timed_out
from service.images.decode import Decoded, Header, load, probe
from service.images.preprocess import region, to_mnist, to_mnist_many

# What one request may cost on the event loop: about a millisecond of decoding and framing
# (80 28x28 digits, or one 256x256 image). Measured in decoded pixels from the headers, never
# in bytes: a 4 KB PNG can hold 25 million pixels.
INLINE_PIXELS = 1 << 16
# Bodies above this are not even probed on the loop (a thousand headers cost milliseconds).
INLINE_BYTES = 1 << 16

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """What one request may cost: pixels per image, pixels in all, and until when."""

    image_pixels: int
    request_pixels: int
    deadline: float  # time.monotonic() past which the request has had its 504: stop

    def check_time(self, accepted: str) -> None:
        """Stop the work of a request that has already been answered with a 504."""
        if time.monotonic() > self.deadline:
            raise timed_out(accepted)


def probe_all(blobs: Sequence[bytes], budget: Budget, accepted: str) -> list[Header]:
    """Every upload's header, and the request's decoded pixels held to its budget (413)."""
    if len(blobs) == 1:  # one upload: its refusal needs no position
        headers = [probe(blobs[0], max_pixels=budget.image_pixels, accepted=accepted)]
    else:
        headers = []
        for i, data in enumerate(blobs):
            try:
                headers.append(probe(data, max_pixels=budget.image_pixels, accepted=accepted))
            except BadInput as exc:
                raise exc.at(i) from None
    total = sum([h.pixels for h in headers])
    if total > budget.request_pixels:
        raise BadInput(
            f"the images would decode to {total:,} pixels, more than the "
            f"{budget.request_pixels:,} pixel limit per request",
            accepted,
            413,
        )
    return headers


def frame_all(headers: Sequence[Header], budget: Budget, accepted: str) -> np.ndarray:
    """Decode and frame probed uploads one at a time: (N, 28, 28) float32 in [0, 1].

    One decoded image is alive at a time, and the deadline is checked before each.
    """
    budget.check_time(accepted)
    if len(headers) == 1:  # one upload: its refusal needs no position
        return to_mnist(load(headers[0], accepted))[None]

    def decoded() -> Iterator[Decoded]:
        for i, header in enumerate(headers):
            budget.check_time(accepted)
            try:
                yield load(header, accepted)
            except BadInput as exc:
                raise exc.at(i) from None

    return to_mnist_many(decoded())


def read_frames(blobs: Sequence[bytes], budget: Budget, accepted: str) -> np.ndarray:
    """Uploads -> (N, 28, 28) float32 frames, or BadInput naming the refused image."""
    return frame_all(probe_all(blobs, budget, accepted), budget, accepted)


class DecodeThreads:
    """A worker's few decode threads, and a bounded queue for them; beyond it, a 503.

    The threads bound the memory that decoding can hold at once (one image each); the queue
    bounds how long a burst of photos can keep a request waiting.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self.threads, self.queue = threads, queue
        self.admitted = 0  # running or waiting for a thread
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, work: Callable[..., T], *args: object, accepted: str) -> T:
        """work(*args) in a decode thread, or a 503 BadInput when the queue is full."""
        if self._limiter is None:  # made in the worker's event loop
            self._limiter = anyio.CapacityLimiter(self.threads)
        if self.admitted >= self.threads + self.queue:
            raise overloaded(accepted)
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(functools.partial(work, *args), limiter=self._limiter)
        finally:
            self.admitted -= 1


async def frames_of(blobs: Sequence[bytes], budget: Budget, accepted: str, threads: DecodeThreads) -> np.ndarray:
    """read_frames, on the event loop when the request is cheap, else in a decode thread."""
    if sum(len(b) for b in blobs) <= INLINE_BYTES:
        headers = probe_all(blobs, budget, accepted)
        if sum(h.pixels for h in headers) <= INLINE_PIXELS:
            return frame_all(headers, budget, accepted)
        return await threads.run(frame_all, headers, budget, accepted, accepted=accepted)
    return await threads.run(read_frames, blobs, budget, accepted, accepted=accepted)


def read_upright(blobs: Sequence[bytes], budget: Budget, accepted: str) -> Decoded:
    """One upload -> its pixels, upright, as decode gives them (for a reader that frames the
    upload itself, such as /read_number's)."""
    (header,) = probe_all(blobs, budget, accepted)
    budget.check_time(accepted)
    return load(header, accepted)


async def upright_of(blobs: Sequence[bytes], budget: Budget, accepted: str, threads: DecodeThreads) -> Decoded:
    """read_upright, on the event loop when the upload is cheap to decode, else in a decode thread."""
    if sum(len(b) for b in blobs) <= INLINE_BYTES:
        (header,) = probe_all(blobs, budget, accepted)
        if header.pixels <= INLINE_PIXELS:
            return load(header, accepted)
        return await threads.run(load, header, accepted, accepted=accepted)
    return await threads.run(read_upright, blobs, budget, accepted, accepted=accepted)


def read_region(blobs: Sequence[bytes], budget: Budget, accepted: str) -> np.ndarray:
    """One upload -> (h, w, 3) uint8: the upload with the region its frame came from drawn."""
    (header,) = probe_all(blobs, budget, accepted)
    budget.check_time(accepted)
    return region(load(header, accepted))


async def region_of(blobs: Sequence[bytes], budget: Budget, accepted: str, threads: DecodeThreads) -> np.ndarray:
    """read_region, always in a decode thread: a photo's scene costs milliseconds."""
    return await threads.run(read_region, blobs, budget, accepted, accepted=accepted)
