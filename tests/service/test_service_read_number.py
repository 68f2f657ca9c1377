"""/read_number: a handwritten number in one upload, read digit by digit (in-process service)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contract.number import MAX_DIGITS
from harness.images import png_bytes
from harness.numbers import sample_numbers

pytestmark = pytest.mark.service


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _row(digits: list[np.ndarray], gap: int = 16) -> np.ndarray:
    """MNIST digits side by side, white on black, `gap` pixels apart, in a margin."""
    canvas = np.zeros((60, 20 + len(digits) * (28 + gap)), np.uint8)
    for k, d in enumerate(digits):
        canvas[16:44, 10 + k * (28 + gap) : 38 + k * (28 + gap)] = d
    return canvas


@pytest.fixture(scope="module")
def version(client) -> str:
    return client.get("/model").json()["version"]


def _read(client, data: bytes, content_type: str = "image/png"):
    return client.post("/read_number", content=data, headers={"content-type": content_type})


class TestReadNumber:
    def test_spaced_digits_are_read_left_to_right(self, client, mnist_test, version) -> None:
        images, labels = mnist_test
        r = _read(client, _png(_row([images[i] for i in range(4)])))
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"number", "confidence", "digits", "model_version"}
        assert body["number"] == "".join(str(int(v)) for v in labels[:4])
        assert body["model_version"] == version
        assert 0 <= body["confidence"] <= min(d["confidence"] for d in body["digits"]) + 1e-6
        xs = [d["box"][0] for d in body["digits"]]
        assert xs == sorted(xs)

    def test_each_digit_has_its_shape_and_a_box_inside_the_image(self, client, mnist_test) -> None:
        images, _ = mnist_test
        pixels = _row([images[i] for i in range(4, 9)])
        body = client.post("/read_number", files={"image": ("n.png", _png(pixels), "image/png")}).json()
        height, width = pixels.shape
        assert len(body["digits"]) == 5
        for d in body["digits"]:
            assert set(d) == {"digit", "confidence", "is_digit", "box"}
            assert 0 <= d["digit"] <= 9 and 0 <= d["confidence"] <= 1 and isinstance(d["is_digit"], bool | None)
            x, y, w, h = d["box"]
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height

    def test_rendered_photos_of_spaced_numbers(self, client, mnist_test) -> None:
        images, labels = mnist_test
        uploads = list(sample_numbers(images[:2000], labels[:2000], kinds=("spaced",), per_kind=10, lengths=(2, 5)))
        right = sum(_read(client, u.data, u.content_type).json()["number"] == u.label for u in uploads)
        assert right >= 8

    def test_one_digit_reads_as_predict_reads_it(self, client, mnist_test) -> None:
        images, _ = mnist_test
        for i in range(10):
            data = png_bytes(images[i])
            one = _read(client, data).json()
            predicted = client.post("/predict", content=data, headers={"content-type": "image/png"}).json()
            assert len(one["digits"]) == 1
            assert one["number"] == str(predicted["digit"])
            assert one["digits"][0]["confidence"] == pytest.approx(predicted["confidence"], abs=1e-5)

    def test_big_photo_is_read_off_the_event_loop_path_too(self, client, mnist_test) -> None:
        images, labels = mnist_test
        big = Image.fromarray(255 - _row([images[i] for i in range(3)])).resize((900, 380))
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        r = _read(client, buf.getvalue(), "image/jpeg")
        assert r.status_code == 200 and r.json()["number"] == "".join(str(int(v)) for v in labels[:3])


class TestRefusals:
    def test_blank_image_is_422_no_ink(self, client) -> None:
        r = _read(client, _png(np.full((60, 120), 255, np.uint8)))
        assert r.status_code == 422 and "no ink" in r.json()["error"]

    def test_too_many_digits_is_422_naming_the_limit(self, client, mnist_test) -> None:
        images, _ = mnist_test
        r = _read(client, _png(_row([images[i] for i in range(MAX_DIGITS + 3)])))
        assert r.status_code == 422
        body = r.json()
        assert f"the {MAX_DIGITS}" in body["error"] and set(body) == {"error", "accepted"}

    def test_not_an_image_is_400(self, client) -> None:
        r = _read(client, b"not an image at all")
        assert r.status_code == 400 and set(r.json()) == {"error", "accepted"}

    def test_unsupported_content_type_is_415(self, client) -> None:
        r = client.post("/read_number", content=b"{}", headers={"content-type": "application/json"})
        assert r.status_code == 415

    def test_refusals_are_counted(self, client) -> None:
        from prometheus_client import REGISTRY

        labels = {"endpoint": "read_number", "status": "400"}
        before = REGISTRY.get_sample_value("mnist_rejected_requests_total", labels) or 0.0
        _read(client, b"still not an image")
        assert REGISTRY.get_sample_value("mnist_rejected_requests_total", labels) == before + 1
