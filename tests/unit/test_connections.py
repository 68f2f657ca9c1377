"""service.server.connections.GuardedProtocol driven directly: a stand-in transport, a real event
loop, short limits. What the fault tests show through a server, case by case."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from service.server.connections import GuardedProtocol, Limits

pytestmark = pytest.mark.unit

TIMEOUT = 0.05
REQUEST = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run in a thread of its own: the session's Playwright fixture keeps an event loop
    running in the main thread once the UI tests have started."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


class Transport(asyncio.Transport):
    """Keeps what is written; closed is a flag."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _app(delay: float = 0.0) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


class Server:
    """Protocols sharing one server state, as in one worker."""

    def __init__(self, delay: float = 0.0, **limits: Any) -> None:
        self.cls = type("P", (GuardedProtocol,), {"limits": Limits(**{"header_timeout_s": TIMEOUT, **limits})})
        self.config = uvicorn.Config(_app(delay), http=self.cls, log_config=None, headers=[])
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[GuardedProtocol, Transport]:
        protocol = self.cls(config=self.config, server_state=self.state, app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        return protocol, transport


async def _answered(protocol: GuardedProtocol) -> None:
    while protocol.cycle is None or not protocol.cycle.response_complete:
        await asyncio.sleep(0.001)


def test_a_connection_that_sends_nothing_is_closed_silently() -> None:
    async def scenario() -> None:
        _, transport = Server().connect()
        await asyncio.sleep(TIMEOUT * 3)
        assert transport.closed and transport.written == b""

    run(scenario)


def test_a_head_slower_than_the_timeout_gets_a_408() -> None:
    async def scenario() -> None:
        protocol, transport = Server().connect()
        protocol.data_received(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await asyncio.sleep(TIMEOUT * 3)
        assert transport.closed and transport.written.startswith(b"HTTP/1.1 408")
        assert b'"accepted"' in transport.written

    run(scenario)


def test_a_head_over_the_limit_gets_a_431_before_it_ends() -> None:
    async def scenario() -> None:
        protocol, transport = Server(max_header_bytes=1024).connect()
        protocol.data_received(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(4):
            if not transport.closed:
                protocol.data_received(b"a" * 512)
        assert transport.closed and transport.written.startswith(b"HTTP/1.1 431")

    run(scenario)


def test_kept_alive_requests_are_timed_only_when_their_head_is_split() -> None:
    async def scenario() -> None:
        protocol, transport = Server(max_age_s=0).connect()
        for _ in range(3):  # whole heads: answered, no timer left behind
            protocol.data_received(REQUEST)
            await _answered(protocol)
            assert protocol.head_timer is None
        protocol.data_received(b"GET /readyz HTTP/1.1\r\n")  # the next head stalls halfway
        assert protocol.head_timer is not None
        await asyncio.sleep(TIMEOUT * 3)
        assert transport.closed and b"HTTP/1.1 408" in transport.written

    run(scenario)


def test_a_pipelined_head_is_not_late_while_the_response_before_it_runs() -> None:
    async def scenario() -> None:
        protocol, transport = Server(delay=TIMEOUT * 4, max_age_s=0).connect()
        protocol.data_received(REQUEST + b"GET /readyz HTTP/1.1\r\n")
        await asyncio.sleep(TIMEOUT * 3)
        assert not transport.closed  # still answering the first request
        await _answered(protocol)
        assert transport.written.startswith(b"HTTP/1.1 200")

    run(scenario)


def test_an_old_connection_is_told_to_close_after_its_response() -> None:
    async def scenario() -> None:
        protocol, transport = Server(max_age_s=TIMEOUT).connect()
        protocol.data_received(REQUEST)
        await _answered(protocol)
        assert b"connection: close" not in transport.written.lower()
        await asyncio.sleep(TIMEOUT * 1.5)
        protocol.data_received(REQUEST)
        await _answered(protocol)
        assert b"connection: close" in transport.written.lower() and transport.closed

    run(scenario)


def test_at_the_connection_limit_the_oldest_idle_one_makes_room() -> None:
    async def scenario() -> None:
        server = Server(delay=TIMEOUT * 4, max_connections=2, header_timeout_s=10)
        busy, busy_transport = server.connect()
        busy.data_received(REQUEST)  # mid-request: never closed for room
        _, idle_transport = server.connect()
        _, newest_transport = server.connect()
        assert idle_transport.closed and not busy_transport.closed and not newest_transport.closed
        server.state.connections.discard(next(c for c in server.state.connections if c.transport is idle_transport))
        server.state.connections.discard(next(c for c in server.state.connections if c.transport is newest_transport))
        newest, newest_transport = server.connect()
        newest.data_received(REQUEST)
        _, refused = server.connect()  # both are mid-request: no room
        assert refused.closed and not newest_transport.closed
        await _answered(busy)

    run(scenario)
