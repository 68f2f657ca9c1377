"""The GET routes BentoML's POST-only APIs cannot carry: /model and the /ui page."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.server.security import UI_CSP
from service.settings import get_settings

logger = logging.getLogger(__name__)

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MNIST digit reader</title></head>
<body><h1>MNIST digit reader</h1>
<p>The drawing page is not installed (no <code>service/ui/index.html</code>).
POST an image to <code>/predict</code> instead, or see the API docs at <a href="/">/</a>.</p>
</body></html>
"""


def ui_urls() -> list[str]:
    """Where this worker's /ui page is reachable: its listening sockets (BentoML hands the
    worker an already-bound socket, so the port is only known from the socket itself)."""
    try:
        import psutil

        sockets = psutil.Process().net_connections(kind="inet")
    except Exception:  # no psutil or no permission: the path alone still helps
        return []
    urls = []
    for conn in sockets:
        if conn.status == "LISTEN" and conn.laddr:
            host = conn.laddr.ip
            host = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
            urls.append(f"http://{host}:{conn.laddr.port}/ui")
    return sorted(set(urls))


def model_info(
    metadata: dict[str, Any],
    provider: str,
    threads: int,
    digit_threshold: float | None = None,
    reject_non_digits: bool = False,
) -> dict[str, Any]:
    """What GET /model tells: the served model's own metadata (its digit_detector among it, as
    fitted) plus how it runs here, the digit threshold in force included (null: no detector)."""
    runtime = {
        "provider": provider,
        "intra_op_threads": threads,
        "digit_threshold": digit_threshold,
        "reject_non_digits": reject_non_digits,
    }
    return {**metadata, "runtime": runtime}


async def model(_: Request) -> Response:
    """GET /model: the served model's metadata (version, sha256, accuracy, input spec...)."""
    svc = bentoml.get_current_service()
    if svc is None:
        return JSONResponse({"error": "model not loaded yet", "accepted": "retry"}, 503)
    return JSONResponse(svc.model_info())


def _ui_index(ui_dir: Path, headers: dict[str, str]) -> Any:
    async def index(_: Request) -> Response:
        """GET /ui: the draw-a-digit page, or a placeholder until it is installed."""
        page = ui_dir / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html", headers=headers)
        return HTMLResponse(PLACEHOLDER, headers=headers)

    return index


def build_app(ui_dir: Path | None = None) -> Starlette:
    """A small Starlette app mounted beside BentoML's routes."""
    settings = get_settings()
    ui_dir = ui_dir or settings.ui_dir
    index = _ui_index(ui_dir, {"content-security-policy": UI_CSP} if settings.security_headers else {})
    return Starlette(
        routes=[
            Route("/model", model, methods=["GET"]),
            Route("/ui", index, methods=["GET"]),
            Route("/ui/", index, methods=["GET"]),
            Mount("/ui", StaticFiles(directory=ui_dir, check_dir=False), name="ui"),
        ]
    )
