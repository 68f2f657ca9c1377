"""Admission control: what one worker lets in at once, and the budget each request carries.

A request's Budget (pixels per image and per request, its deadline) is set when it arrives;
the worker's decode threads bound the memory of decoding, and BodiesInFlight bounds the
bodies that wait for them. Each is one per process, made on first use from the settings.
"""

from __future__ import annotations

import contextlib
import functools
import time

from starlette.requests import Request

from service.errors import overloaded
from service.images.frames import INLINE_BYTES, Budget, DecodeThreads
from service.settings import Settings, get_settings


def budget(settings: Settings) -> Budget:
    """This request's budget, its deadline counted from now (the request's arrival)."""
    return Budget(settings.max_image_pixels, settings.max_request_pixels, time.monotonic() + settings.timeout_s)


@functools.lru_cache(maxsize=1)
def decode_threads() -> DecodeThreads:
    """This worker's decode threads (one set per process)."""
    settings = get_settings()
    return DecodeThreads(settings.decode_threads, settings.decode_queue)


class BodiesInFlight:
    """The bytes of request bodies over INLINE_BYTES that a worker holds at once, bounded.

    Decode threads bound the memory of decoding; this bounds the bodies that wait for them
    (each held until its request is framed, a multipart one twice over while it is split).
    A body is counted by its Content-Length, or at the byte limit when it has none; one body
    always fits, and past the budget a request gets a 503 before its body is read.
    """

    def __init__(self, budget: int) -> None:
        self.budget, self.held = budget, 0

    def hold(self, request: Request, limit: int, accepted: str) -> contextlib.AbstractContextManager[None]:
        """Count this request's body while the returned context runs (small ones: nothing)."""
        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else limit
        if size <= INLINE_BYTES or size > limit:  # small, or read_body's 413 at once
            return NOTHING_HELD
        if self.held and self.held + size > self.budget:
            raise overloaded(accepted)
        return _Held(self, size)


NOTHING_HELD = contextlib.nullcontext()  # a tiny upload's hold: no generator per request


class _Held:
    """One body's bytes, counted from enter to exit."""

    def __init__(self, bodies: BodiesInFlight, size: int) -> None:
        self.bodies, self.size = bodies, size

    def __enter__(self) -> None:
        self.bodies.held += self.size

    def __exit__(self, *exc: object) -> None:
        self.bodies.held -= self.size


@functools.lru_cache(maxsize=1)
def bodies_in_flight() -> BodiesInFlight:
    """This worker's count of bodies in flight (one per process)."""
    return BodiesInFlight(get_settings().max_bytes_in_flight)
