"""The hostile uploads of docs/hardening.md against a started service: each ends in our JSON, never a 500 or
a dead worker. Sizes are the list's; the time margins are wide (seconds of work against a
0.5 s timeout), nothing else is timed."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ENV = {"MNIST_WORKERS": "1", "MNIST_TIMEOUT_S": "0.5"}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _stroke(size: int, mode: str) -> bytes:
    img = Image.new(mode, (size, size), "white")
    ImageDraw.Draw(img).line([(size // 2, size // 5), (size // 2, 4 * size // 5)], fill="black", width=size // 12)
    return _png(img)


def _ours(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "accepted"} and body["accepted"], body
    return body


@pytest.fixture(scope="module")
def url():
    with running_service(env=ENV) as base:
        yield base


def test_sixty_four_pixel_bombs_are_refused_from_their_headers(url) -> None:
    bomb = _png(Image.new("1", (6300, 6300)))  # 12 KB each; 40 Mpx each decoded
    files = [("images", (f"{i}.png", bomb, "image/png")) for i in range(64)]
    body = _ours(httpx.post(f"{url}/predict_batch", files=files, timeout=60), 413)
    assert "pixel limit" in body["error"]
    assert httpx.get(f"{url}/livez").status_code == 200


def test_a_request_past_its_timeout_gets_our_504_and_the_worker_goes_on(url) -> None:
    big = _stroke(4000, "RGBA")  # 16 Mpx: at the per-image cap, about a second each to read
    files = [("images", (f"{i}.png", big, "image/png")) for i in range(4)]
    body = _ours(httpx.post(f"{url}/predict_batch", files=files, timeout=60), 504)
    assert "0.5 s" in body["accepted"]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    r = httpx.post(f"{url}/predict", content=png_bytes(digit), headers={"content-type": "image/png"}, timeout=60)
    assert r.status_code == 200 and r.json()["digit"] == 1


def test_deep_json_and_a_body_less_post(url) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    _ours(httpx.post(f"{url}/predict_pixels", content=deep, headers={"content-type": "application/json"}), 400)
    _ours(httpx.post(f"{url}/predict"), 400)
