"""A request's body, the one way every endpoint reads it: held against the worker's bodies in
flight, read under the byte limit (413 as soon as it passes), and parsed on the event loop
when small or in a decode thread when large.

    async with HeldBody(request, settings, accepted) as body:
        parsed = await parse_off_loop(parse, body, *args, accepted=accepted)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from service.errors import too_large
from service.images.frames import INLINE_BYTES
from service.settings import Settings
from service.transport.limits import bodies_in_flight, decode_threads

T = TypeVar("T")


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, accepted: str) -> bytes:
    """The whole body, refused with a 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large("the request body", limit, accepted)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit, accepted)
        chunks.append(chunk)
    return b"".join(chunks)


class HeldBody:
    """`async with HeldBody(...) as body`: the body, counted against the worker's bodies in
    flight (a 503 before reading when they are full) from before it is read until the block
    ends. A class, not a generator: a tiny /predict pays for no generator frame."""

    __slots__ = ("accepted", "held", "limit", "request")

    def __init__(self, request: Request, settings: Settings, accepted: str) -> None:
        self.request, self.limit, self.accepted = request, settings.max_upload_bytes, accepted
        self.held: contextlib.AbstractContextManager[None] | None = None

    async def __aenter__(self) -> bytes:
        held = bodies_in_flight().hold(self.request, self.limit, self.accepted)
        held.__enter__()
        self.held = held
        try:
            return await read_body(self.request, self.limit, self.accepted)
        except BaseException:
            held.__exit__(None, None, None)
            self.held = None
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self.held is not None:
            self.held.__exit__(None, None, None)
            self.held = None


async def parse_off_loop(parse: Callable[..., T], body: bytes, *args: object, accepted: str) -> T:
    """parse(body, *args): on the event loop for a body of at most INLINE_BYTES, else in a
    decode thread (a 503 when they and their queue are full): parsing megabytes of JSON or
    multipart holds the loop for tens of milliseconds."""
    if len(body) <= INLINE_BYTES:
        return parse(body, *args)
    return await decode_threads().run(parse, body, *args, accepted=accepted)
