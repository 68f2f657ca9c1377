"""Every malformed request gets a 4xx with {"error", "accepted"}, and the service keeps serving."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.images import png_bytes
from service.settings import Settings
from service.transport import specs

pytestmark = pytest.mark.service

RNG = np.random.default_rng(0)
NOISE_PNG = png_bytes(RNG.integers(0, 255, (64, 64), np.uint8))
DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255  # a "1"
GOOD_PNG = png_bytes(DIGIT)


def _bomb() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")  # 100 Mpx in a ~12 kB file
    return buf.getvalue()


def _pixels(value: object) -> dict:
    return {"json": {"images": value}}


def _raw(data: bytes, content_type: str = "image/png") -> dict:
    return {"content": data, "headers": {"content-type": content_type}}


def _file(data: bytes, field: str = "image", name: str = "x.png") -> dict:
    return {"files": {field: (name, data, "image/png")}}


CASES = {
    # /predict (and /preprocess shares its input handling)
    "empty raw body": ("/predict", _raw(b""), 400, "empty"),
    "empty file": ("/predict", _file(b""), 400, "empty"),
    "bytes that are no image": ("/predict", _raw(b"hello, this is text" * 20), 400, "not an image"),
    "truncated image": ("/predict", _raw(NOISE_PNG[: len(NOISE_PNG) // 2]), 400, "truncated"),
    "wrong field name": ("/predict", _file(GOOD_PNG, field="file"), 400, "'image'"),
    "text instead of a file": (
        "/predict",
        {"data": {"image": "not a file"}, "files": {"note": ("n.txt", b"x", "text/plain")}},
        400,
        "file upload",
    ),
    "two images to /predict": (
        "/predict",
        {"files": [("image", ("a.png", GOOD_PNG, "image/png"))] * 2},
        413,
        "limit is 1",
    ),
    "pixel bomb": ("/predict", _raw(_bomb()), 413, "pixel limit"),
    "no ink at all": ("/predict", _raw(png_bytes(np.full((50, 50), 255, np.uint8))), 422, "no ink"),
    "JSON sent to /predict": ("/predict", {"json": {"image": "abc"}}, 415, "content type"),
    "no content type": ("/predict", {"content": GOOD_PNG}, 415, "content type"),
    "no body, no content type": ("/predict", {}, 400, "empty"),
    "unsupported format (ICO)": ("/predict", _raw(png_bytes(DIGIT, "ICO")), 415, "ICO"),
    "garbage multipart": (
        "/predict",
        _raw(b"--xyz\r\nnonsense", "multipart/form-data; boundary=xyz"),
        400,
        "",
    ),
    "preprocess of non-image": ("/preprocess", _raw(b"\x00" * 100), 400, "not an image"),
    # /read_number reads its upload as /predict does
    "number: empty raw body": ("/read_number", _raw(b""), 400, "empty"),
    "number: truncated image": ("/read_number", _raw(NOISE_PNG[: len(NOISE_PNG) // 2]), 400, "truncated"),
    "number: wrong field name": ("/read_number", _file(GOOD_PNG, field="images"), 400, "'image'"),
    "number: two images": (
        "/read_number",
        {"files": [("image", ("a.png", GOOD_PNG, "image/png"))] * 2},
        413,
        "limit is 1",
    ),
    "number: pixel bomb": ("/read_number", _raw(_bomb()), 413, "pixel limit"),
    "number: no ink": ("/read_number", _raw(png_bytes(np.full((50, 50), 255, np.uint8))), 422, "no ink"),
    "number: JSON": ("/read_number", {"json": {"image": "abc"}}, 415, "content type"),
    "number: unsupported format (ICO)": ("/read_number", _raw(png_bytes(DIGIT, "ICO")), 415, "ICO"),
    # /predict_batch
    "batch: wrong field name": ("/predict_batch", _file(GOOD_PNG, field="image"), 400, "'images'"),
    "batch: one bad image": (
        "/predict_batch",
        {"files": [("images", ("a.png", GOOD_PNG, "image/png")), ("images", ("b.png", b"junk", "image/png"))]},
        400,
        "images[1]",
    ),
    "batch: raw body": ("/predict_batch", _raw(GOOD_PNG), 415, "content type"),
    # /predict_pixels
    "pixels: not JSON": ("/predict_pixels", _raw(b"{oops", "application/json"), 400, "JSON"),
    "pixels: wrong shape": ("/predict_pixels", _pixels([np.zeros((28, 27)).tolist()]), 422, "shape"),
    "pixels: wrong type": ("/predict_pixels", _pixels([[["x"] * 28] * 28]), 422, "numbers"),
    "pixels: out of range": ("/predict_pixels", _pixels([[[300] * 28] * 28]), 422, "[0, 255]"),
    "pixels: float out of range": ("/predict_pixels", _pixels([[[1.5] * 28] * 28]), 422, "1.0"),
    "pixels: NaN": (
        "/predict_pixels",
        _raw(json.dumps({"images": [[[float("nan")] * 28] * 28]}).encode(), "application/json"),
        422,
        "NaN",
    ),
    "pixels: empty list": ("/predict_pixels", _pixels([]), 422, "at least 1"),
    "pixels: booleans": ("/predict_pixels", _pixels([[[True] * 28] * 28]), 422, "bool"),
    "pixels: JSON nested 5,000 deep": (
        "/predict_pixels",
        _raw(b"[" * 5000 + b"]" * 5000, "application/json"),
        400,
        "nested",
    ),
    "pixels: no images key": ("/predict_pixels", {"json": {"pixels": []}}, 422, "images"),
}


@pytest.mark.parametrize(("path", "request_kwargs", "status", "fragment"), CASES.values(), ids=CASES.keys())
def test_bad_request_gets_a_4xx_json_and_the_service_keeps_serving(
    client, path, request_kwargs, status, fragment
) -> None:
    r = client.post(path, **request_kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "accepted"}
    assert fragment in body["error"]
    assert body["accepted"]
    ok = client.post("/predict", **_raw(GOOD_PNG))
    assert ok.status_code == 200 and ok.json()["digit"] == 1


THIN = {
    f"{w}x{h}": png_bytes(RNG.integers(0, 255, (h, w), np.uint8))
    for w, h in ((1000, 1), (1, 1000), (2, 800), (800, 2), (1, 1))
}


@pytest.mark.parametrize("path", ["/predict", "/preprocess", "/predict_batch", "/read_number"])
@pytest.mark.parametrize("size", THIN.keys())
def test_very_thin_images_are_read_or_refused_never_a_500(client, path, size) -> None:
    field = "images" if path == "/predict_batch" else "image"
    r = client.post(path, files=[(field, ("t.png", THIN[size], "image/png"))])
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert set(r.json()) == {"error", "accepted"}


class TestLimits:
    """Limits come from settings read once; here they are swapped for small ones."""

    @pytest.fixture
    def small_limits(self, monkeypatch) -> Settings:
        limits = Settings(
            max_upload_bytes=20_000, max_images_per_request=3, max_image_pixels=1_000_000, max_request_pixels=1_500_000
        )
        monkeypatch.setattr(specs, "get_settings", lambda: limits)
        return limits

    def test_body_over_the_byte_limit(self, client, small_limits) -> None:
        big = png_bytes(RNG.integers(0, 255, (200, 200), np.uint8))
        assert len(big) > small_limits.max_upload_bytes
        r = client.post("/predict", **_raw(big))
        assert r.status_code == 413 and "20,000 byte limit" in r.json()["error"]

    def test_too_many_images(self, client, small_limits) -> None:
        files = [("images", (f"{i}.png", GOOD_PNG, "image/png")) for i in range(4)]
        r = client.post("/predict_batch", files=files)
        assert r.status_code == 413 and "at most 3" in r.json()["accepted"]
        assert len(client.post("/predict_batch", files=files[:3]).json()) == 3

    def test_image_over_the_pixel_cap(self, client, small_limits) -> None:
        bomb = png_bytes(np.zeros((1001, 1000), np.uint8))
        r = client.post("/predict", **_raw(bomb))
        assert r.status_code == 413 and "1,000,000 pixel limit" in r.json()["error"]

    def test_request_over_the_pixel_budget(self, client, small_limits) -> None:
        big = ("b.png", png_bytes(np.zeros((800, 1000), np.uint8)), "image/png")
        r = client.post("/predict_batch", files=[("images", big)] * 2)
        assert r.status_code == 413 and "1,500,000 pixel limit per request" in r.json()["error"]

    def test_too_many_pixel_images(self, client, small_limits) -> None:
        r = client.post("/predict_pixels", json={"images": [DIGIT.tolist()] * 4})
        assert r.status_code == 413 and "limit is 3" in r.json()["error"]


def test_rejections_are_counted(client) -> None:
    client.post("/predict", **_raw(b""))
    from service.server.metrics import REJECTED

    assert REJECTED.labels(endpoint="predict", status="400")._value.get() >= 1
