"""Every answer says whether the upload looks like one handwritten digit, over real
HTTP against `bentoml serve` with harness/tiny_model.py's detector model (its digit score is a
fixed function of mean ink, threshold 0.5): flagged by default, refused by /predict with
MNIST_REJECT_NON_DIGITS, counted on /metrics, documented in /docs.json."""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.images import png_bytes
from harness.tiny_model import tiny_digit_score

pytestmark = [pytest.mark.service, pytest.mark.slow]

BAR = np.zeros((28, 28), np.uint8)
BAR[4:24, 11:17] = 255  # a "1": mean ink 0.15, the tiny detector's ideal digit
SQUARE = np.zeros((28, 28), np.uint8)
SQUARE[4:24, 4:24] = 255  # a filled square: mean ink 0.51, not a digit
PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def http(detector_url: str):
    with httpx.Client(base_url=detector_url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def rejecting(rejecting_detector_url: str):
    with httpx.Client(base_url=rejecting_detector_url, timeout=60.0) as c:
        yield c


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of one Prometheus series on /metrics (all label sets matching `labels`)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _pixels(*images: np.ndarray) -> dict:
    return {"images": [img.tolist() for img in images]}


def test_predict_says_whether_the_upload_looks_like_a_digit(http: httpx.Client, mnist_test) -> None:
    """A drawn stroke and an MNIST digit are digits, a filled square is not; the score is the
    detector's on the frame the model saw (GET /preprocess), and the other fields keep their meaning."""
    for image, expected in [(BAR, True), (SQUARE, False), (mnist_test[0][0], True)]:
        body = png_bytes(image)
        answer = http.post("/predict", content=body, headers=PNG).json()
        seen = np.asarray(Image.open(io.BytesIO(http.post("/preprocess", content=body, headers=PNG).content)))
        assert answer["is_digit"] is expected, answer
        assert answer["digit_score"] == pytest.approx(float(tiny_digit_score(seen[None] / 255.0)[0]), abs=0.01)
        assert answer["confidence"] == max(answer["probabilities"]) == answer["probabilities"][answer["digit"]]
        assert answer["model_version"].startswith("tiny-")


def test_batch_endpoints_flag_each_image_in_order(http: httpx.Client) -> None:
    files = [("images", (f"{i}.png", png_bytes(img), "image/png")) for i, img in enumerate([BAR, SQUARE, BAR])]
    assert [p["is_digit"] for p in http.post("/predict_batch", files=files).json()] == [True, False, True]
    frames = [BAR, np.full((28, 28), 255, np.uint8), np.zeros((28, 28), np.uint8), BAR]
    answers = http.post("/predict_pixels", json=_pixels(*frames)).json()
    assert [p["is_digit"] for p in answers] == [True, False, False, True]
    expected = tiny_digit_score(np.stack(frames) / 255.0)
    np.testing.assert_allclose([p["digit_score"] for p in answers], expected, atol=1e-5)


def test_model_shows_the_detector_and_the_threshold_in_force(http: httpx.Client, detector_models: Path) -> None:
    info = http.get("/model").json()
    written = json.loads((detector_models / info["version"] / "metadata.json").read_text())
    assert info["digit_detector"] == written["digit_detector"]
    assert info["outputs"]["digit_score"] == {"name": "digit_score", "shape": ["N"]}
    assert info["runtime"]["digit_threshold"] == written["digit_detector"]["threshold"] == 0.5
    assert info["runtime"]["reject_non_digits"] is False


def test_flagged_images_are_counted_on_metrics(http: httpx.Client) -> None:
    before = _metric(http, "mnist_non_digit_predictions_total")
    frames = [BAR, SQUARE, np.full((28, 28), 255, np.uint8)]
    assert http.post("/predict_pixels", json=_pixels(*frames)).status_code == 200
    assert http.post("/predict", content=png_bytes(SQUARE), headers=PNG).status_code == 200
    assert _metric(http, "mnist_non_digit_predictions_total") - before == 3


def test_api_docs_describe_the_fields_and_the_refusal(http: httpx.Client) -> None:
    spec = http.get("/docs.json").json()
    prediction = spec["components"]["schemas"]["Prediction"]
    assert {"is_digit", "digit_score"} <= set(prediction["required"])
    assert "MNIST_REJECT_NON_DIGITS" in spec["paths"]["/predict"]["post"]["responses"]["422"]["description"]
    assert "MNIST_REJECT_NON_DIGITS" not in spec["paths"]["/predict_batch"]["post"]["responses"]["422"]["description"]


class TestRejecting:
    """MNIST_REJECT_NON_DIGITS=true, MNIST_DIGIT_THRESHOLD=0.6."""

    def test_predict_refuses_a_non_digit_with_our_422(self, rejecting: httpx.Client) -> None:
        rejected = _metric(rejecting, "mnist_rejected_requests_total", endpoint="predict", status="422")
        flagged = _metric(rejecting, "mnist_non_digit_predictions_total")
        r = rejecting.post("/predict", files={"image": ("square.png", png_bytes(SQUARE), "image/png")})
        assert r.status_code == 422 and set(r.json()) == {"error", "accepted"}
        assert r.json()["error"] == (
            "the image does not look like one handwritten digit (digit score 0.00, threshold 0.60)"
        )
        assert "one handwritten digit" in r.json()["accepted"]
        assert rejecting.post("/predict", content=png_bytes(BAR), headers=PNG).json()["is_digit"] is True
        assert _metric(rejecting, "mnist_rejected_requests_total", endpoint="predict", status="422") == rejected + 1
        assert _metric(rejecting, "mnist_non_digit_predictions_total") == flagged + 1

    def test_concurrent_requests_batched_together_get_their_own_answers(self, rejecting: httpx.Client) -> None:
        """/predict's adaptive batching mixes digits and non-digits in one run: each request
        still gets its own 200 or 422."""
        uploads = [BAR if i % 3 else SQUARE for i in range(24)]

        def post(image: np.ndarray) -> int:
            return rejecting.post("/predict", content=png_bytes(image), headers=PNG).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, uploads))
        assert statuses == [200 if i % 3 else 422 for i in range(24)]

    def test_batch_endpoints_flag_and_never_refuse(self, rejecting: httpx.Client) -> None:
        files = [("images", (f"{i}.png", png_bytes(img), "image/png")) for i, img in enumerate([SQUARE, BAR])]
        r = rejecting.post("/predict_batch", files=files)
        assert r.status_code == 200 and [p["is_digit"] for p in r.json()] == [False, True]
        r = rejecting.post("/predict_pixels", json=_pixels(SQUARE, BAR))
        assert r.status_code == 200 and [p["is_digit"] for p in r.json()] == [False, True]

    def test_the_threshold_setting_wins_over_the_fitted_one(self, rejecting: httpx.Client, http: httpx.Client) -> None:
        grey = np.full((28, 28), 0.268)  # mean ink 0.268: digit score 0.55, between 0.5 and 0.6
        assert 0.5 < tiny_digit_score(grey[None])[0] < 0.6
        assert http.post("/predict_pixels", json=_pixels(grey)).json()[0]["is_digit"] is True
        assert rejecting.post("/predict_pixels", json=_pixels(grey)).json()[0]["is_digit"] is False
        info = rejecting.get("/model").json()
        assert info["runtime"]["digit_threshold"] == 0.6 and info["runtime"]["reject_non_digits"] is True
        assert info["digit_detector"]["threshold"] == 0.5  # as fitted, unchanged
