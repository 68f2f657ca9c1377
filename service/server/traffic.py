"""Our answers when a request is too slow (504) or a worker too busy (503), in our JSON.

BentoML answers both itself, in its own shapes: its timeout with {"error"} alone, and an
overloaded batch queue with "An unexpected error has occurred". This middleware sits inside
BentoML's timeout (kept as a backstop, BACKSTOP_S later) and answers the API routes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.errors import error_response, overloaded, timed_out

BACKSTOP_S = 5.0  # BentoML's own timeout comes this much after ours
RETRY = "the same request again, after the Retry-After delay"


class Deadline:
    """ASGI middleware: a 504 at timeout_s for the API routes, and their 503s in our JSON."""

    def __init__(self, app: Any, timeout_s: float, paths: frozenset[str]) -> None:
        self.app, self.timeout_s, self.paths = app, timeout_s, paths
        self.late = (
            f"requests that can be answered within {timeout_s:g} s (MNIST_TIMEOUT_S): "
            "fewer or smaller images, or the same request when the server is less busy"
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        started = replaced = False

        async def send_ours(message: dict[str, Any]) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 503:  # BentoML's batching fell behind: say so, ours
                    replaced = True
                    return await error_response(overloaded(RETRY))(scope, receive, send)
            if not replaced:
                await send(message)

        # The request's own task is cancelled at the deadline (no task per request: that cost
        # 12 us of every /predict). Work in a decode thread stops at its own deadline
        # (frames.Budget), which is when a cancelled wait for it returns.
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, receive, send_ours)
        except TimeoutError:
            if not started:
                await error_response(timed_out(self.late))(scope, receive, send)
