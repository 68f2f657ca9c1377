"""API keys, security headers and connection recycling through a real `bentoml serve`: the
headers and the recycling live in uvicorn's protocol, which the in-process client skips."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.service, pytest.mark.slow]

KEYS = "first-key,second-key"


def _digit() -> bytes:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    return png_bytes(pixels)


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    env = {"MNIST_API_KEYS": KEYS, "MNIST_WORKERS": "1", "MNIST_CONNECTION_MAX_AGE_S": "1"}
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
