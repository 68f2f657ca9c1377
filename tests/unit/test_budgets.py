"""Budgets hold before work, heavy work leaves the event loop, and late work stops.

In-process checks of service.images.frames and service.server.traffic (no server): what runs where, what
is refused before decoding, and what a busy or late request is answered with.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from harness.images import png_bytes
from service.errors import BadInput
from service.images import decode, frames
from service.images.frames import Budget, DecodeThreads, frames_of, read_frames
from service.server.traffic import Deadline

pytestmark = pytest.mark.unit

DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255
GOOD_PNG = png_bytes(DIGIT)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _budget(image: int = 16_000_000, request: int = 64_000_000, deadline: float = float("inf")) -> Budget:
    return Budget(image, request, deadline)


SMALL_BOMB = _png(Image.new("1", (5000, 5000)))  # 25 Mpx in about 3.8 KB


class Threads(DecodeThreads):
    """DecodeThreads that records what was sent to a thread."""

    def __init__(self) -> None:
        super().__init__(threads=1, queue=1)
        self.sent: list[str] = []

    async def run(self, work, *args, accepted):  # type: ignore[override]
        self.sent.append(work.__name__)
        return await super().run(work, *args, accepted=accepted)


def test_a_small_file_of_many_pixels_is_not_decoded_on_the_event_loop() -> None:
    assert len(SMALL_BOMB) < frames.INLINE_BYTES  # small in bytes: the old rule decoded it inline
    threads = Threads()
    blank = asyncio.run(_refusal(frames_of([SMALL_BOMB], _budget(image=30_000_000), "x", threads)))
    assert threads.sent == ["frame_all"] and blank.status == 422  # decoded, in a thread


def test_a_tiny_png_is_framed_inline() -> None:
    threads = Threads()
    out = asyncio.run(frames_of([GOOD_PNG], _budget(), "x", threads))
    assert out.shape == (1, 28, 28) and threads.sent == []


async def _refusal(work) -> BadInput:
    try:
        await work
    except BadInput as exc:
        return exc
    raise AssertionError("not refused")


def test_the_per_image_cap_holds_from_the_header() -> None:
    with pytest.raises(BadInput) as info:
        read_frames([SMALL_BOMB], _budget(image=16_000_000), "x")
    assert info.value.status == 413 and "5000x5000" in info.value.error


def test_the_request_budget_refuses_before_any_decode(monkeypatch) -> None:
    loads: list[object] = []
    monkeypatch.setattr(frames, "load", lambda *a: loads.append(a))
    bomb = _png(Image.new("1", (3000, 3000)))  # 9 Mpx each, under the per-image cap
    with pytest.raises(BadInput) as info:
        read_frames([bomb] * 8, _budget(image=10_000_000, request=64_000_000), "x")
    assert info.value.status == 413 and "72,000,000 pixels" in info.value.error
    assert loads == []


def test_a_big_jpeg_counts_at_the_scale_it_is_decoded_at() -> None:
    buf = io.BytesIO()
    Image.new("L", (6000, 4000), 255).save(buf, "JPEG")  # 24 MP stored
    header = decode.probe(buf.getvalue(), max_pixels=6_000_000, accepted="x")
    assert header.pixels <= 1_000_000  # decoded at 1/8 scale: 750x500
    with pytest.raises(BadInput) as info:  # stored, never more than JPEG_STORED_FACTOR x the cap
        decode.probe(buf.getvalue(), max_pixels=5_000_000, accepted="x")
    assert info.value.status == 413 and "6000x4000 JPEG" in info.value.error


def test_work_stops_at_the_deadline(monkeypatch) -> None:
    loads: list[int] = []
    real_load = frames.load

    def slow_load(header, accepted):
        loads.append(1)
        time.sleep(0.05)
        return real_load(header, accepted)

    monkeypatch.setattr(frames, "load", slow_load)
    with pytest.raises(BadInput) as info:
        read_frames([GOOD_PNG] * 50, _budget(deadline=time.monotonic() + 0.2), "x")
    assert info.value.status == 504
    assert 0 < len(loads) < 50  # stopped between images, not after all of them


def test_a_full_decode_queue_answers_503() -> None:
    async def scenario() -> BadInput:
        threads = DecodeThreads(threads=1, queue=1)
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def block() -> None:
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

        busy = [asyncio.create_task(threads.run(block, accepted="x")) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await _refusal(threads.run(lambda: None, accepted="x"))
        release.set()
        await asyncio.gather(*busy)
        return refused

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "busy" in refused.error


async def _call(app, path: str = "/predict") -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app: status, headers, body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": []}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body


def test_a_late_request_gets_our_504() -> None:
    async def slow(scope, receive, send) -> None:
        await asyncio.sleep(5)

    status, _, body = asyncio.run(_call(Deadline(slow, 0.1, frozenset({"/predict"}))))
    answer = json.loads(body)
    assert status == 504 and set(answer) == {"error", "accepted"}
    assert "0.1 s" in answer["accepted"]


def test_bentomls_overload_503_becomes_ours_with_retry_after() -> None:
    async def overloaded(scope, receive, send) -> None:
        body = b'{"error": "An unexpected error has occurred, please check the server log."}'
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    status, headers, body = asyncio.run(_call(Deadline(overloaded, 5, frozenset({"/predict"}))))
    answer = json.loads(body)
    assert status == 503 and headers["retry-after"] == "1"
    assert set(answer) == {"error", "accepted"} and "unexpected" not in answer["error"]


def test_other_paths_pass_through() -> None:
    async def ok(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"not ready"})

    status, _, body = asyncio.run(_call(Deadline(ok, 5, frozenset({"/predict"})), "/readyz"))
    assert status == 503 and body == b"not ready"


class _Request:
    def __init__(self, length: int | None) -> None:
        self.headers = {} if length is None else {"content-length": str(length)}


def test_bodies_in_flight_are_bounded_but_one_always_fits() -> None:
    from service.transport.limits import BodiesInFlight

    bodies = BodiesInFlight(budget=50_000_000)
    mib20 = 20 * 1024 * 1024
    with bodies.hold(_Request(mib20), mib20, "x"), bodies.hold(_Request(mib20), mib20, "x"):
        with pytest.raises(BadInput) as info, bodies.hold(_Request(mib20), mib20, "x"):
            pass
        assert info.value.status == 503
        with bodies.hold(_Request(300), mib20, "x"):  # small bodies are not counted
            assert bodies.held == 2 * mib20
        with pytest.raises(BadInput), bodies.hold(_Request(None), mib20, "x"):  # no length: the limit
            pass
    assert bodies.held == 0
    with BodiesInFlight(budget=1).hold(_Request(mib20), mib20, "x") as alone:
        assert alone is None  # alone, a body over the budget still fits
