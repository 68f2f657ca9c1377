"""Every endpoint's happy path, in-process (BentoML's ASGI app, no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness.images import png_bytes
from service.images.frames import INLINE_PIXELS
from service.images.preprocess import centre_of_mass

pytestmark = pytest.mark.service


def _check_prediction(p: dict, version: str) -> None:
    assert set(p) == {"digit", "confidence", "probabilities", "model_version", "is_digit", "digit_score"}
    assert isinstance(p["is_digit"], bool | None) and (p["is_digit"] is None) == (p["digit_score"] is None)
    assert 0 <= p["digit"] <= 9 and len(p["probabilities"]) == 10
    assert p["confidence"] == pytest.approx(max(p["probabilities"]))
    assert p["probabilities"][p["digit"]] == p["confidence"]
    assert sum(p["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert p["model_version"] == version


@pytest.fixture(scope="module")
def version(client) -> str:
    return client.get("/model").json()["version"]


class TestHealth:
    def test_live_and_ready(self, client) -> None:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200

    def test_model_metadata(self, client, repo_root) -> None:
        info = client.get("/model").json()
        served = (repo_root / "models" / "served.json").read_text()
        assert info["version"] in served
        for key in ("sha256", "test_accuracy", "architecture", "input", "labels"):
            assert key in info
        assert info["input"]["shape"] == ["N", 1, 28, 28]
        assert info["runtime"]["provider"] == "CPUExecutionProvider"
        detector = info.get("digit_detector")  # the threshold in force: the fitted one, or none
        assert info["runtime"]["digit_threshold"] == (detector["threshold"] if detector else None)

    def test_api_docs_list_every_endpoint(self, client) -> None:
        paths = client.get("/docs.json").json()["paths"]
        for path in ("/predict", "/predict_batch", "/predict_pixels", "/preprocess", "/read_number"):
            assert path in paths
        predict = paths["/predict"]["post"]["requestBody"]["content"]
        assert "multipart/form-data" in predict

    def test_ui_page(self, client) -> None:
        page = client.get("/ui")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/ui/").status_code == 200


class TestPredict:
    def test_multipart_field_image(self, client, mnist_test, version) -> None:
        images, labels = mnist_test
        r = client.post("/predict", files={"image": ("d.png", png_bytes(images[0]), "image/png")})
        assert r.status_code == 200
        _check_prediction(r.json(), version)
        assert r.json()["digit"] == labels[0]

    @pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream"])
    def test_raw_body(self, client, mnist_test, version, content_type) -> None:
        images, labels = mnist_test
        r = client.post("/predict", content=png_bytes(images[1]), headers={"content-type": content_type})
        assert r.status_code == 200 and r.json()["digit"] == labels[1]

    def test_big_upload_decodes_off_the_event_loop_path_too(self, client, mnist_test) -> None:
        images, labels = mnist_test
        big = Image.fromarray(255 - images[2]).resize((600, 600), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        assert big.width * big.height > INLINE_PIXELS  # decoded in a decode thread
        r = client.post("/predict", content=buf.getvalue(), headers={"content-type": "image/jpeg"})
        assert r.status_code == 200 and r.json()["digit"] == labels[2]


class TestBatch:
    def test_predict_batch_keeps_order(self, client, mnist_test, version) -> None:
        images, labels = mnist_test
        files = [("images", (f"{i}.png", png_bytes(images[i]), "image/png")) for i in range(20)]
        r = client.post("/predict_batch", files=files)
        assert r.status_code == 200
        answers = r.json()
        assert len(answers) == 20
        for p in answers:
            _check_prediction(p, version)
        digits = np.array([p["digit"] for p in answers])
        assert (digits == labels[:20]).mean() >= 0.9

    def test_batch_larger_than_max_batch_size_is_chunked(self, client, mnist_test) -> None:
        from service.settings import get_settings

        n = get_settings().max_batch_size * 2 + 3
        images, _ = mnist_test
        files = [("images", (f"{i}.png", png_bytes(images[i]), "image/png")) for i in range(n)]
        single = client.post("/predict_batch", files=files[-1:]).json()[0]
        answers = client.post("/predict_batch", files=files).json()
        assert len(answers) == n and answers[-1] == single

    @pytest.mark.parametrize("scale", ["uint8", "float"])
    def test_predict_pixels(self, client, mnist_test, version, scale) -> None:
        images, labels = mnist_test
        batch = images[:8] if scale == "uint8" else (images[:8] / 255.0).round(4)
        r = client.post("/predict_pixels", json={"images": batch.tolist()})
        assert r.status_code == 200
        digits = [p["digit"] for p in r.json()]
        assert len(digits) == 8 and np.mean(np.array(digits) == labels[:8]) >= 0.75


class TestPreprocess:
    def test_returns_the_28x28_png_the_model_sees(self, client, mnist_test) -> None:
        images, _ = mnist_test
        photo = Image.fromarray(255 - images[3]).resize((280, 200))
        buf = io.BytesIO()
        photo.save(buf, "PNG")
        r = client.post("/preprocess", files={"image": ("p.png", buf.getvalue(), "image/png")})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        seen = np.asarray(Image.open(io.BytesIO(r.content)))
        assert seen.shape == (28, 28) and seen.max() == 255
        cy, cx = centre_of_mass(seen.astype(float))
        assert abs(cy - 14) < 1 and abs(cx - 14) < 1

    def test_mnist_digit_is_seen_unchanged(self, client, mnist_test) -> None:
        images, _ = mnist_test
        r = client.post("/preprocess", content=png_bytes(images[4]), headers={"content-type": "image/png"})
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), images[4])

    def test_show_region_draws_what_was_kept_on_the_upload(self, client, mnist_test) -> None:
        """?show=region: the upload (at the working size) with the digit's box drawn in red; the
        sheet on a table gets its outline in green too."""
        from harness.uploads import render

        images, _ = mnist_test
        data, ctype = render(images[7], "scene_table", np.random.default_rng(2))
        r = client.post("/preprocess?show=region", content=data, headers={"content-type": ctype})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        view = np.asarray(Image.open(io.BytesIO(r.content)))
        assert view.ndim == 3 and view.shape[2] == 3 and max(view.shape[:2]) <= 384
        red = (view[..., 0] == 220) & (view[..., 1] == 0) & (view[..., 2] == 0)
        green = (view[..., 0] == 0) & (view[..., 1] == 170) & (view[..., 2] == 0)
        assert red.sum() > 20 and green.sum() > 20

    def test_show_takes_frame_or_region_only(self, client, mnist_test) -> None:
        images, _ = mnist_test
        r = client.post("/preprocess?show=frame", content=png_bytes(images[4]), headers={"content-type": "image/png"})
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), images[4])
        r = client.post("/preprocess?show=all", content=png_bytes(images[4]), headers={"content-type": "image/png"})
        assert r.status_code == 400 and "show" in r.json()["error"]

    def test_show_region_of_a_blank_photo_is_the_no_ink_422(self, client) -> None:
        blank = io.BytesIO()
        Image.new("RGB", (400, 300), (235, 232, 225)).save(blank, "JPEG")
        r = client.post("/preprocess?show=region", content=blank.getvalue(), headers={"content-type": "image/jpeg"})
        assert r.status_code == 422 and "no ink" in r.json()["error"]
