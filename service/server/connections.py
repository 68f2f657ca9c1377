"""A worker's connections: slow, idle or oversized clients cannot pile up (docs/hardening.md).

BentoML starts uvicorn in each worker with options of its own choosing and forwards none of
uvicorn's others. Uvicorn with httptools then has no header timeout (a connection that never
finishes its headers stays open forever), no header-size limit (httptools keeps a header
however long), and no cap on open connections (idle ones use up the open-file limit, and
then /readyz cannot be accepted). A kept-alive connection also stays on its worker for good,
so a worker that replaces a killed one gets no traffic from clients already connected.

`protocol(settings)` and `headers(settings)` are what service.server.internals hands uvicorn
through its own `http` and `headers` options (uvicorn.Config's defaults, in `bentoml serve`'s
workers only). The protocol adds, per connection:

- a head deadline: request line and headers within `header_timeout_s` of the connection
  opening or of the request's first byte (uvicorn's keep-alive timeout covers the idle time
  between requests), else 408 and close;
- a head-size limit: more than `max_header_bytes` before the headers end gets a 431;
- a connection cap per worker: at `max_connections` the oldest connection that is not in
  the middle of a request is closed to make room (the open-file limit is raised to fit);
- a maximum age: the first response after `connection_max_age_s` (jittered down to half of
  it) says `Connection: close`, so that clients reconnect and spread over every worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import resource
from dataclasses import dataclass
from typing import Any

from service.server.internals import HttpToolsProtocol
from service.settings import Settings

logger = logging.getLogger("service")

RESERVED_FILES = 128  # the worker's own: model, libraries, logs, its pipes to the arbiter
DEFAULT_MAX_CONNECTIONS = 4096
SECURITY_HEADERS = [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY")]
REPORT_EVERY_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What one connection may cost a worker."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_age_s: float = 5.0  # 0: never close a kept-alive connection for its age


class _Tally:
    """Connections closed by the guards, logged as one line a second after the first and then
    at most every REPORT_EVERY_S (a flood would otherwise write a line per connection)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last = -math.inf
        self.pending = False

    def add(self, what: str, loop: asyncio.AbstractEventLoop) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        if not self.pending:
            self.pending = True
            loop.call_later(max(1.0, self.last + REPORT_EVERY_S - loop.time()), self.report, loop)

    def report(self, loop: asyncio.AbstractEventLoop) -> None:
        logger.warning(
            "connections closed by this worker's guards: %s",
            ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items())),
        )
        self.counts.clear()
        self.pending = False
        self.last = loop.time()


tally = _Tally()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline and size limit, a connection cap and
    a maximum connection age (module docstring)."""

    limits = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not _make_room(self.connections, self.loop):
            transport.close()  # every connection is mid-request: no room without dropping work
            tally.add("refused at the connection limit", self.loop)
            return
        super().connection_made(transport)
        now = self.loop.time()
        self.opened_at = now
        max_age = self.limits.max_age_s
        self.retire_at = now + max_age * random.uniform(0.5, 1.0) if max_age else math.inf
        self.in_head = False
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "transport", None) is None:  # refused in connection_made
            return
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head under way before this chunk (or a new connection's first bytes) counts it.
        counting = self.in_head or self.head_timer is not None
        super().data_received(data)
        if self.in_head:  # the head is still not complete
            if self.head_timer is None:  # a kept-alive request's head spans chunks: time it
                self._arm_head_timer()
            if not counting:
                return
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                tally.add("for headers over MNIST_MAX_HEADER_BYTES", self.loop)
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    f"request line and headers over {self.limits.max_header_bytes} bytes",
                    "set MNIST_MAX_HEADER_BYTES to allow longer headers",
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.head_timer is not None:
            self._cancel_head_timer()
        super().on_headers_complete()
        if self.loop.time() >= self.retire_at and self.cycle is not None:
            self.cycle.keep_alive = False  # uvicorn answers with Connection: close, then closes

    def _arm_head_timer(self) -> None:
        self.head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head waits for the response before it: not late
            return
        if not self.in_head:  # opened and never used: nothing to answer
            tally.add("idle since they opened", self.loop)
            self.transport.close()
            return
        tally.add("for headers slower than MNIST_HEADER_TIMEOUT_S", self.loop)
        self._refuse(
            408,
            "Request Timeout",
            f"request line and headers not received within {self.limits.header_timeout_s:g} s",
            "a request whose headers arrive in time",
        )

    def _refuse(self, status: int, reason: str, error: str, accepted: str) -> None:
        """Answer a request that never reached the app with our 4xx JSON, and close."""
        self._cancel_head_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way on this connection: just close
            return
        body = json.dumps({"error": error, "accepted": accepted}).encode()
        lines = [f"HTTP/1.1 {status} {reason}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close", b"", body]
        self.transport.write(b"\r\n".join(lines))
        self.transport.close()


def _make_room(connections: set[Any], loop: asyncio.AbstractEventLoop) -> bool:
    """Close the oldest connection that is between requests (idle, or still sending its
    head); False when every connection is in the middle of a request."""
    idle = [
        c
        for c in connections
        if isinstance(c, GuardedProtocol)
        and not c.transport.is_closing()
        and (c.cycle is None or c.cycle.response_complete)
    ]
    if not idle:
        return False
    min(idle, key=lambda c: c.opened_at).transport.close()
    tally.add("idle at the connection limit", loop)
    return True


def connection_budget(wanted: int, reserved: int = RESERVED_FILES) -> int:
    """Connections that fit the open-file limit, after raising its soft value toward `wanted`
    plus the worker's own files (never past the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + reserved
    if soft != resource.RLIM_INFINITY and soft < need:
        new_soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - reserved))


def limits_from(settings: Settings) -> Limits:
    """The per-connection limits `settings` ask for, the connection cap fitted to the
    open-file limit (raised when it can be)."""
    wanted = settings.max_connections or DEFAULT_MAX_CONNECTIONS
    cap = connection_budget(wanted)
    if settings.max_connections and cap < wanted:
        logger.warning("MNIST_MAX_CONNECTIONS=%d does not fit the open-file limit: %d per worker", wanted, cap)
    return Limits(settings.header_timeout_s, settings.max_header_bytes, cap, settings.connection_max_age_s)


def protocol(settings: Settings) -> type[GuardedProtocol]:
    """GuardedProtocol with the limits `settings` ask for: uvicorn's `http` in each worker."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits_from(settings)})


def headers(settings: Settings) -> list[tuple[str, str]]:
    """The headers every response carries: uvicorn's `headers` in each worker."""
    return SECURITY_HEADERS if settings.security_headers else []
