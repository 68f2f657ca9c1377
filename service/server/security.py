"""Optional API keys (MNIST_API_KEYS) and the /ui page's content security policy.

With no keys set nothing is installed and nothing changes. With keys, every request but
CORS preflights and the paths left open (health checks by default) must carry one, as
`Authorization: Bearer <key>` or `X-API-Key: <key>`; anything else gets a 401 with our JSON
error. Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every key,
so that the time taken says nothing about how much of a key was right. nosniff and
X-Frame-Options come with every response from uvicorn's default headers
(service/server/connections.py); the page-specific CSP comes with /ui (service/pages.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import bentoml

from service.settings import Settings

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

HEALTH_PATHS = ("/livez", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")
METRICS_PATHS = ("/metrics",)
UI_PATHS = ("/ui",)  # and everything under /ui/
# The draw-a-digit page: its own script, style and images, and POSTs to this origin only
# (base-uri 'self': the page sets <base href="/ui/">; 'none' left it without its script).
UI_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
UNAUTHORIZED = json.dumps(
    {
        "error": "missing or unknown API key",
        "accepted": "an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    }
).encode()


def digest(key: str | bytes) -> bytes:
    """What is kept and compared: a fixed-length digest, never the key itself."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


def open_paths(settings: Settings) -> tuple[str, ...]:
    """The paths that need no key under these settings."""
    paths: tuple[str, ...] = ()
    if settings.open_health:
        paths += HEALTH_PATHS
    if settings.open_metrics:
        paths += METRICS_PATHS
    if settings.open_ui:
        paths += UI_PATHS
    return paths


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries, from Authorization: Bearer or X-API-Key."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.strip()
    return None


class ApiKeys:
    """Pure ASGI middleware: a 401 for any request without a known key, except open paths."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], open_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.digests = tuple(digest(k) for k in keys)
        self.open_exact = frozenset(open_paths)
        self.open_prefixes = tuple(p.rstrip("/") + "/" for p in open_paths)

    def allows(self, key: bytes | None) -> bool:
        """True when `key` is one of ours; compares against every key, in constant time."""
        if key is None:
            return False
        presented = digest(key)
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(presented, known)
        return found

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":  # CORS preflights carry no key
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path in self.open_exact or path.startswith(self.open_prefixes):
            return await self.app(scope, receive, send)
        if self.allows(presented_key(scope["headers"])):
            return await self.app(scope, receive, send)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(UNAUTHORIZED)),
                    (b"www-authenticate", b'Bearer realm="mnist"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNAUTHORIZED})


def guarded(settings: Settings) -> Callable[[Any], Any]:
    """Class decorator for the service: installs ApiKeys when MNIST_API_KEYS is set."""

    def install(service: bentoml.Service[Any]) -> bentoml.Service[Any]:
        if settings.keys:
            service.add_asgi_middleware(ApiKeys, keys=settings.keys, open_paths=open_paths(settings))
        return service

    return install
