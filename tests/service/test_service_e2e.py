"""End to end over real HTTP: `bentoml serve` on a free port (or MNIST_SERVICE_URL)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest

from harness.images import png_bytes
from service.model import Classifier, resolve

pytestmark = [pytest.mark.service, pytest.mark.slow]
N_ACCURACY = 1000


@pytest.fixture(scope="module")
def http(service_url: str):
    with httpx.Client(base_url=service_url, timeout=60.0) as c:
        yield c


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of one Prometheus series (all label sets matching `labels`)."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_sync_http_client(service_url: str, mnist_test, tmp_path: Path) -> None:
    images, labels = mnist_test
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(images[0]))
    with bentoml.SyncHTTPClient(service_url) as client:
        answer = client.predict(image=path)
    assert answer["digit"] == labels[0] and len(answer["probabilities"]) == 10


def test_plain_multipart_post(http, mnist_test) -> None:
    images, labels = mnist_test
    r = http.post("/predict", files={"image": ("d.png", png_bytes(images[1]), "image/png")})
    assert r.status_code == 200 and r.json()["digit"] == labels[1]


def test_accuracy_over_http_matches_the_model(http, mnist_test, repo_root) -> None:
    """MNIST digits as 28x28 PNGs through /predict: within 0.1 pp of the tensors fed directly."""
    images, labels = mnist_test
    images, labels = images[:N_ACCURACY], labels[:N_ACCURACY]
    blobs = [png_bytes(img) for img in images]

    def predict(data: bytes) -> int:
        r = http.post("/predict", content=data, headers={"content-type": "image/png"})
        r.raise_for_status()
        return r.json()["digit"]

    with ThreadPoolExecutor(16) as pool:
        over_http = np.array(list(pool.map(predict, blobs)))
    served = http.get("/model").json()
    local = Classifier(resolve(repo_root / "models"), "cpu", 1)
    if served["version"] != local.version:
        pytest.skip(f"remote serves {served['version']}, local models/ has {local.version}")
    direct = local.probabilities(images.astype(np.float32) / 255.0).argmax(1)
    acc_http, acc_direct = (over_http == labels).mean(), (direct == labels).mean()
    assert acc_http >= acc_direct - 0.001, (acc_http, acc_direct)


def test_concurrent_predicts_are_batched(http, mnist_test) -> None:
    """Concurrent single-image calls reach onnxruntime together: some batches hold > 1 image."""
    images, _ = mnist_test
    blobs = [png_bytes(img) for img in images[:256]]

    def predict(data: bytes) -> int:
        return http.post("/predict", files={"image": ("d.png", data, "image/png")}).status_code

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(predict, blobs)) == {200}
    text = http.get("/metrics").text
    series = "bentoml_service_adaptive_batch_size"
    batches = _metric(text, f"{series}_count", method_name="predict")
    singles = _metric(text, f"{series}_bucket", method_name="predict", le="1.0")
    images_seen = _metric(text, f"{series}_sum", method_name="predict")
    assert batches > 0
    assert singles < batches, "every batch held one image: adaptive batching did not coalesce"
    assert images_seen / batches > 1.0


def test_drift_metrics(http) -> None:
    text = http.get("/metrics").text
    assert _metric(text, "mnist_predictions_total") >= 1
    assert _metric(text, "mnist_prediction_confidence_count") >= 1
    assert "mnist_low_confidence_predictions_total" in text


def test_bad_input_over_http_leaves_the_workers_serving(http) -> None:
    assert http.post("/predict", content=b"", headers={"content-type": "image/png"}).status_code == 400
    r = http.post("/predict_batch", files={"images": ("x.png", b"\x89PNG\r\n\x1a\n", "image/png")})
    assert r.status_code == 400 and set(r.json()) == {"error", "accepted"}
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    ok = http.post("/predict", content=png_bytes(digit), headers={"content-type": "image/png"})
    assert ok.status_code == 200
