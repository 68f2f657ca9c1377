"""API keys, security headers, head limits and connection recycling through a real `bentoml
serve`: the headers, the 408 and 431 and the recycling live in uvicorn's protocol, which the
in-process client skips (and which BentoML's worker must still build with our protocol)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.service, pytest.mark.slow]

KEYS = "first-key,second-key"
HEADER_TIMEOUT_S = 2.0
MAX_HEADER_BYTES = 8192


def _digit() -> bytes:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    return png_bytes(pixels)


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    env = {
        "MNIST_API_KEYS": KEYS,
        "MNIST_WORKERS": "1",
        "MNIST_CONNECTION_MAX_AGE_S": "1",
        "MNIST_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "MNIST_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    }
    with running_service(env=env) as url:
        yield url


def test_keys_guard_the_api_and_leave_health_open(keyed_url: str) -> None:
    png = {"content-type": "image/png"}
    with httpx.Client(base_url=keyed_url, timeout=30) as http:
        refused = http.post("/predict", content=_digit(), headers=png)
        assert refused.status_code == 401 and set(refused.json()) == {"error", "accepted"}
        assert http.post("/predict", content=_digit(), headers={**png, "x-api-key": "wrong"}).status_code == 401
        assert (
            http.post("/predict", content=_digit(), headers={**png, "authorization": "Bearer second-key"}).json()[
                "digit"
            ]
            == 1
        )
        assert http.get("/readyz").status_code == 200
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"x-api-key": "first-key"}).status_code == 200
        assert http.get("/ui").status_code == 401
        page = http.get("/ui", headers={"x-api-key": "first-key"})
        assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_every_response_carries_the_security_headers(keyed_url: str) -> None:
    with httpx.Client(base_url=keyed_url, timeout=30) as http:
        for r in (http.get("/readyz"), http.post("/predict")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"


def _answer(url: str, head: bytes) -> tuple[bytes, float]:
    """Send `head` (never finished) on a raw connection; what the server wrote until it closed,
    and how long that took."""
    parts = urlsplit(url)
    start = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=HEADER_TIMEOUT_S + 15) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - start


def _status_and_json(answer: bytes) -> tuple[bytes, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"x-content-type-options: nosniff" in head.lower(), head
    return head.split(b"\r\n", 1)[0], json.loads(body)


def test_a_head_over_the_limit_gets_a_431_before_it_ends(keyed_url: str) -> None:
    """Before any API key is looked at: the head never reaches the app."""
    answer, _ = _answer(keyed_url, b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES))
    status, body = _status_and_json(answer)
    assert status.startswith(b"HTTP/1.1 431"), answer[:300]
    assert set(body) == {"error", "accepted"}


def test_a_head_slower_than_the_timeout_gets_a_408(keyed_url: str) -> None:
    answer, took = _answer(keyed_url, b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    status, body = _status_and_json(answer)
    assert status.startswith(b"HTTP/1.1 408"), answer[:300]
    assert set(body) == {"error", "accepted"}
    assert HEADER_TIMEOUT_S - 0.5 <= took < HEADER_TIMEOUT_S + 10, took


def test_kept_alive_connections_are_recycled(keyed_url: str) -> None:
    """With MNIST_CONNECTION_MAX_AGE_S=1 a response within ~2 s says Connection: close."""
    seen = []
    with httpx.Client(base_url=keyed_url, timeout=30) as http:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = http.get("/readyz")
            seen.append(r.headers.get("connection", ""))
            if r.headers.get("connection") == "close":
                break
            time.sleep(0.05)
    assert seen[-1] == "close" and len(seen) > 1, seen


def test_without_keys_nothing_is_asked(service_url: str) -> None:
    """The default service (MNIST_API_KEYS unset) answers without a key, as before."""
    with httpx.Client(base_url=service_url, timeout=30) as http:
        r = http.post("/predict", content=_digit(), headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["digit"] == 1
        assert http.get("/metrics").status_code == 200
        assert http.get("/ui").status_code == 200
