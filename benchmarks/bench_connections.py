"""What service/server/connections.py's GuardedProtocol costs per request, next to uvicorn's own
httptools protocol: both driven in-process on uvloop with a stand-in transport and an app
that answers at once, so the difference is the guards' work alone (timers, counters, age).

    python -m benchmarks.bench_connections            # 20,000 kept-alive requests, 5 rounds

Prints microseconds of CPU per request for each protocol, interleaved rounds, median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.server.connections import GuardedProtocol, Limits

REQUEST = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nPNG!"


class Transport(asyncio.Transport):
    """Swallows writes; what uvicorn asks of a socket transport."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3000)}.get(name, default)

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(protocol_class: type[HttpToolsProtocol], requests: int) -> float:
    """CPU seconds per request over `requests` kept-alive requests on one connection."""
    config = uvicorn.Config(app, http=protocol_class, log_config=None, headers=[])
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(Transport())
    start = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0)
    return (time.process_time() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per round (20000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    args = parser.parse_args()
    import uvloop

    guarded = type("Guarded", (GuardedProtocol,), {"limits": Limits(max_age_s=3600.0)})
    times: dict[str, list[float]] = {"uvicorn httptools": [], "GuardedProtocol": []}
    for _ in range(args.rounds):
        for name, cls in (("uvicorn httptools", HttpToolsProtocol), ("GuardedProtocol", guarded)):
            times[name].append(uvloop.run(run(cls, args.requests)))
    base = statistics.median(times["uvicorn httptools"])
    for name, values in times.items():
        us = statistics.median(values) * 1e6
        print(f"{name:18s} {us:6.1f} us CPU per kept-alive request (+{us - base * 1e6:.1f})")
    print(f"median of {args.rounds} rounds of {args.requests} requests each")


if __name__ == "__main__":
    main()
