"""The Open Inference Protocol (KServe v2 REST) through the clients people already use:
tritonclient[http] and KServe's InferenceRESTClient, against a started `bentoml serve`;
its refusals through the in-process app; its accuracy against /predict's."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import bentoml
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from harness.images import png_bytes
from harness.tiny_model import tiny_digit_score
from service.model import Classifier, ModelFiles, Outputs
from service.server.security import ApiKeys, open_paths
from service.settings import Settings

pytestmark = [pytest.mark.service]
MODEL = "mnist"


@pytest.fixture(scope="module")
def triton_client(service_url: str):
    client = triton.InferenceServerClient(urlparse(service_url).netloc, concurrency=8)
    yield client
    client.close()


@pytest.fixture(scope="module")
def metadata(triton_client) -> dict:
    return triton_client.get_model_metadata(MODEL)


@pytest.fixture(scope="module")
def direct(repo_root, metadata):
    """In-process onnxruntime for each version the server offers: the expected answers."""
    return {v: Classifier(ModelFiles.of(repo_root / "models" / v), "cpu", 1) for v in metadata["versions"]}


def _pixels(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1], as the graph takes them."""
    return (images.astype(np.float32) / 255.0)[:, None]


def _fp32_input(name: str, pixels: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(pixels.shape), "FP32")
    return tensor.set_data_from_numpy(pixels, binary_data=binary)


def test_health_and_metadata(triton_client, metadata, repo_root) -> None:
    served = json.loads((repo_root / "models" / "served.json").read_text())
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    graph = json.loads((repo_root / "models" / served["served"] / "metadata.json").read_text())
    assert metadata["versions"][0] == served["served"]  # the default comes first
    assert set(metadata["versions"]) <= {served["served"], *served["history"]}
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["inputs"]}
    outputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["outputs"]}
    assert inputs == {graph["input"]["name"]: ("FP32", [-1, 1, 28, 28]), "image": ("BYTES", [-1])}
    detector = (
        {graph["outputs"]["digit_score"]["name"]: ("FP32", [-1]), "is_digit": ("BOOL", [-1])}
        if "digit_detector" in graph
        else {}
    )
    assert outputs == {
        graph["outputs"]["probabilities"]["name"]: ("FP32", [-1, 10]),
        "label": ("INT64", [-1]),
        **detector,
    }
    for version in metadata["versions"]:
        assert triton_client.is_model_ready(MODEL, version)
        assert triton_client.get_model_metadata(MODEL, version)["versions"] == [version]
    assert not triton_client.is_model_ready(MODEL, "no-such-version")
    assert not triton_client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_fp32_pixels(triton_client, metadata, direct, mnist_test, binary: bool) -> None:
    images, labels = mnist_test
    pixels = _pixels(images[:64])
    name = metadata["inputs"][0]["name"]
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = triton_client.infer(MODEL, [_fp32_input(name, pixels, binary)], outputs=outputs, request_id="r1")
    response = result.get_response()
    assert response["id"] == "r1" and response["model_version"] == metadata["versions"][0]
    assert [o["name"] for o in response["outputs"]] == ["label", "probabilities"]
    probs = result.as_numpy("probabilities")
    expected = direct[metadata["versions"][0]].probabilities(pixels)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), expected.argmax(1))
    assert (result.as_numpy("label") == labels[:64]).mean() > 0.9


def test_readme_example_runs_as_pasted(service_url, repo_root) -> None:
    """README's tritonclient example, against this server, prints the sample's digit."""
    readme = (repo_root / "README.md").read_text()
    section = readme[readme.index("### Open Inference Protocol") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python"))]
    code = code.replace("localhost:3000", urlparse(service_url).netloc)
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[7]"), done.stdout


def test_only_the_outputs_asked_for(triton_client, metadata, mnist_test) -> None:
    pixels = _pixels(mnist_test[0][:3])
    inp = _fp32_input(metadata["inputs"][0]["name"], pixels, True)
    result = triton_client.infer(MODEL, [inp], outputs=[triton.InferRequestedOutput("label")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None and result.as_numpy("label").shape == (3,)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-base64"])
def test_bytes_images_read_like_predict(triton_client, service_url, mnist_test, binary: bool) -> None:
    """Image files as BYTES get /predict's decoding and framing: the same probabilities."""
    images, _ = mnist_test
    files = [png_bytes(img) for img in images[:16]]
    elements = files if binary else [base64.b64encode(f) for f in files]
    tensor = triton.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(elements, dtype=np.object_), binary_data=binary)
    result = triton_client.infer(MODEL, [tensor])
    with httpx.Client(base_url=service_url, timeout=60) as http:
        via_predict = [http.post("/predict", content=f, headers={"content-type": "image/png"}).json() for f in files]
    np.testing.assert_allclose(result.as_numpy("probabilities"), [p["probabilities"] for p in via_predict], atol=1e-5)
    assert result.as_numpy("label").tolist() == [p["digit"] for p in via_predict]


def test_every_version_answers_as_itself(triton_client, metadata, direct, mnist_test) -> None:
    """Concurrent requests for different versions, coalesced into shared batches, each get
    their own version's answer."""
    pixels = _pixels(mnist_test[0][:8])
    name = metadata["inputs"][0]["name"]
    asked = [metadata["versions"][i % len(metadata["versions"])] for i in range(24)]
    pending = [(v, triton_client.async_infer(MODEL, [_fp32_input(name, pixels, True)], model_version=v)) for v in asked]
    for version, request in pending:
        result = request.get_result()
        assert result.get_response()["model_version"] == version
        np.testing.assert_allclose(result.as_numpy("probabilities"), direct[version].probabilities(pixels), atol=1e-6)


def test_errors_reach_the_client(triton_client, metadata, mnist_test) -> None:
    pixels = _pixels(mnist_test[0][:2])
    with pytest.raises(InferenceServerException, match="unknown model") as err:
        triton_client.infer("nope", [_fp32_input(metadata["inputs"][0]["name"], pixels, True)])
    assert err.value.status() == "404"
    with pytest.raises(InferenceServerException, match="unknown input") as err:
        triton_client.infer(MODEL, [_fp32_input("wrong", pixels, True)])
    assert err.value.status() == "400"


def test_v2_requests_go_through_adaptive_batching(service_url, metadata, mnist_test) -> None:
    """Every v2 infer request of a started server passes BentoML's batching dispatcher (the
    histogram counts requests per run); test_concurrent_requests_share_model_runs shows
    that concurrent ones share runs, which a fast idle machine may not need to do here."""

    def batches() -> tuple[float, float]:
        text = httpx.get(f"{service_url}/metrics", timeout=30).text
        total = {"count": 0.0, "sum": 0.0}
        for line in text.splitlines():
            m = re.match(r"^bentoml_service_adaptive_batch_size_(count|sum)\{([^}]*)\}\s+(\S+)$", line)
            if m and 'method_name="v2_infer"' in m.group(2):
                total[m.group(1)] += float(m.group(3))
        return total["count"], total["sum"]

    count0, sum0 = batches()
    inp = _fp32_input(metadata["inputs"][0]["name"], _pixels(mnist_test[0][:16]), True)
    many = triton.InferenceServerClient(urlparse(service_url).netloc, concurrency=32)
    for _ in range(2):
        for request in [many.async_infer(MODEL, [inp]) for _ in range(64)]:
            request.get_result()
    many.close()
    count1, sum1 = batches()
    assert sum1 - sum0 == 128, (count0, sum0, count1, sum1)
    assert 0 < count1 - count0 <= 128


def test_concurrent_requests_share_model_runs(client, monkeypatch, mnist_test) -> None:
    """The coalescing itself, made certain: with every model run held for 50 ms (off the event
    loop), 16 concurrent v2 requests reach onnxruntime in fewer runs than requests."""
    svc = bentoml.get_current_service()  # the in-process service behind `client`
    real, runs = svc.classifier.run, []

    def slow(pixels: np.ndarray) -> Outputs:
        runs.append(len(pixels))
        time.sleep(0.05)
        return real(pixels)

    monkeypatch.setattr(svc.classifier, "run", slow)
    monkeypatch.setattr(svc, "inline", False)
    pixels = _pixels(mnist_test[0][:1])
    body = {
        "inputs": [
            {
                "name": svc.classifier.input_name,
                "shape": [1, 1, 28, 28],
                "datatype": "FP32",
                "data": pixels.ravel().tolist(),
            }
        ]
    }
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: client.post("/v2/models/mnist/infer", json=body), range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    assert sum(runs) == 16 and len(runs) < 16, runs


def test_kserve_rest_client(service_url, metadata, direct, mnist_test) -> None:
    images, _ = mnist_test
    pixels = _pixels(images[:10])
    name = metadata["inputs"][0]["name"]

    async def run() -> list:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            assert await client.is_server_live(service_url)
            assert await client.is_server_ready(service_url)
            assert await client.is_model_ready(service_url, MODEL)
            answers = []
            for binary in (True, False):
                tensor = InferInput(name=name, shape=list(pixels.shape), datatype="FP32")
                tensor.set_data_from_numpy(pixels, binary_data=binary)
                outputs = [RequestedOutput("probabilities", {"binary_data": binary})]
                request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_outputs=outputs)
                answers.append(await client.infer(service_url, request, model_name=MODEL))
            return answers
        finally:
            await client.close()

    expected = direct[metadata["versions"][0]].probabilities(pixels)
    for response in asyncio.run(run()):
        (out,) = response.outputs
        assert out.name == "probabilities"
        np.testing.assert_allclose(out.as_numpy().reshape(10, 10), expected, atol=1e-6)


# --- the digit detector's outputs, against the tiny detector model ---------------
# tests/conftest.py serves harness/tiny_model.py's detector model (threshold 0.5) with an older
# tiny version without a detector in its history; its digit score is a fixed function of mean ink.


def _detector_frames() -> np.ndarray:
    """(3, 1, 28, 28) float32: a digit-like bar, a filled square, a blank frame."""
    frames = np.zeros((3, 1, 28, 28), np.float32)
    frames[0, 0, 4:24, 11:17] = 1.0  # mean ink 0.15
    frames[1, 0, 4:24, 4:24] = 1.0  # mean ink 0.51
    return frames


@pytest.fixture(scope="module")
def detector_client(detector_url: str):
    client = triton.InferenceServerClient(urlparse(detector_url).netloc)
    yield client
    client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_detector_outputs_reach_tritonclient(detector_client, binary: bool) -> None:
    meta = detector_client.get_model_metadata(MODEL)
    outputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["outputs"]}
    assert outputs["digit_score"] == ("FP32", [-1]) and outputs["is_digit"] == ("BOOL", [-1])
    frames = _detector_frames()
    asked = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("is_digit", "digit_score", "label")]
    result = detector_client.infer(MODEL, [_fp32_input("pixels", frames, binary)], outputs=asked)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["is_digit", "digit_score", "label"]
    scores, flags = result.as_numpy("digit_score"), result.as_numpy("is_digit")
    assert scores.dtype == np.float32 and flags.dtype == np.bool_ and scores.shape == flags.shape == (3,)
    np.testing.assert_allclose(scores, tiny_digit_score(frames), atol=1e-6)
    assert flags.tolist() == [True, False, False]
    # nothing asked for: every output, the detector's included
    everything = detector_client.infer(MODEL, [_fp32_input("pixels", frames, binary)])
    assert {o["name"] for o in everything.get_response()["outputs"]} == {
        "probabilities",
        "label",
        "digit_score",
        "is_digit",
    }


def test_detector_outputs_by_name_and_only_where_a_version_has_one(detector_client) -> None:
    frames = _detector_frames()
    only = detector_client.infer(
        MODEL, [_fp32_input("pixels", frames, True)], outputs=[triton.InferRequestedOutput("is_digit")]
    )
    assert [o["name"] for o in only.get_response()["outputs"]] == ["is_digit"]
    assert only.as_numpy("is_digit").tolist() == [True, False, False]
    older = detector_client.get_model_metadata(MODEL)["versions"][1]  # served.json's history: no detector
    assert {t["name"] for t in detector_client.get_model_metadata(MODEL, older)["outputs"]} == {
        "probabilities",
        "label",
    }
    plain = detector_client.infer(MODEL, [_fp32_input("pixels", frames, True)], model_version=older)
    assert {o["name"] for o in plain.get_response()["outputs"]} == {"probabilities", "label"}
    with pytest.raises(InferenceServerException, match="unknown output 'is_digit'") as err:
        detector_client.infer(
            MODEL,
            [_fp32_input("pixels", frames, True)],
            model_version=older,
            outputs=[triton.InferRequestedOutput("is_digit")],
        )
    assert err.value.status() == "400"


def test_detector_outputs_reach_the_kserve_client(detector_url: str) -> None:
    frames = _detector_frames()

    async def run() -> list:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            answers = []
            for binary in (True, False):
                tensor = InferInput(name="pixels", shape=list(frames.shape), datatype="FP32")
                tensor.set_data_from_numpy(frames, binary_data=binary)
                outputs = [RequestedOutput(name, {"binary_data": binary}) for name in ("digit_score", "is_digit")]
                request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_outputs=outputs)
                answers.append(await client.infer(detector_url, request, model_name=MODEL))
            return answers
        finally:
            await client.close()

    for response in asyncio.run(run()):
        score, flag = response.outputs
        assert (score.name, score.datatype, flag.name, flag.datatype) == ("digit_score", "FP32", "is_digit", "BOOL")
        np.testing.assert_allclose(score.as_numpy().ravel(), tiny_digit_score(frames), atol=1e-6)
        assert flag.as_numpy().ravel().tolist() == [True, False, False]


def test_v2_flags_and_never_refuses_where_predict_would(rejecting_detector_url: str) -> None:
    """With MNIST_REJECT_NON_DIGITS, v2 infer (batch-shaped) still answers every image, flagged
    at MNIST_DIGIT_THRESHOLD (0.6 there): a grey frame scoring 0.55 is no digit."""
    frames = _detector_frames()
    frames[2] = 0.268  # mean ink 0.268: digit score 0.55
    files = [png_bytes(np.round(f[0] * 255).astype(np.uint8)) for f in frames[:2]]
    client = triton.InferenceServerClient(urlparse(rejecting_detector_url).netloc)
    try:
        pixels = client.infer(MODEL, [_fp32_input("pixels", frames, True)])
        image = triton.InferInput("image", [2], "BYTES")
        image.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=True)
        uploads = client.infer(MODEL, [image])
    finally:
        client.close()
    assert 0.5 < pixels.as_numpy("digit_score")[2] < 0.6
    assert pixels.as_numpy("is_digit").tolist() == [True, False, False]
    assert uploads.as_numpy("is_digit").tolist() == [True, False]


def _binary(name: str, shape: list[int], datatype: str, size: int, raw: bytes) -> tuple[bytes, dict[str, str]]:
    """A body with the binary tensor data extension: its JSON header, then `raw`."""
    header = json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}]}
    ).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


BAD_REQUESTS = [
    ("empty body", b"", {}, 400),
    ("not JSON", b"{nope", {}, 400),
    ("no inputs", b'{"inputs": []}', {}, 422),
    ("inputs not a list", b'{"inputs": 3}', {}, 422),
    ("unknown input", b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0]}]}', {}, 400),
    (
        "wrong datatype",
        b'{"inputs": [{"name": "pixels", "shape": [1,1,28,28], "datatype": "INT8", "data": [0]}]}',
        {},
        400,
    ),
    ("wrong shape", b'{"inputs": [{"name": "pixels", "shape": [1,28,28], "datatype": "FP32", "data": [0]}]}', {}, 400),
    (
        "too few values",
        b'{"inputs": [{"name": "pixels", "shape": [1,1,28,28], "datatype": "FP32", "data": [0]}]}',
        {},
        400,
    ),
    (
        "strings as FP32",
        json.dumps(
            {"inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": ["a"] * 784}]}
        ).encode(),
        {},
        400,
    ),
    (
        "out of range",
        json.dumps(
            {"inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [2.0] * 784}]}
        ).encode(),
        {},
        400,
    ),
    (
        "too many images",
        b'{"inputs": [{"name": "pixels", "shape": [100000,1,28,28], "datatype": "FP32", "data": []}]}',
        {},
        413,
    ),
    ("not base64", b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["**"]}]}', {}, 400),
    (
        "not an image",
        json.dumps(
            {
                "inputs": [
                    {"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(b"hello").decode()]}
                ]
            }
        ).encode(),
        {},
        400,
    ),
    (
        "over the pixel budget",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "image",
                        "shape": [1],
                        "datatype": "BYTES",
                        "data": [base64.b64encode(png_bytes(np.zeros((5000, 5000), np.uint8))).decode()],
                    }
                ]
            }
        ).encode(),
        {},
        413,
    ),
    ("header length past the body", b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, 400),
    ("binary size mismatch", *_binary("pixels", [1, 1, 28, 28], "FP32", 3136, b"\0" * 10), 400),
    ("binary FP32 too short", *_binary("pixels", [1, 1, 28, 28], "FP32", 10, b"\0" * 10), 400),
    ("truncated BYTES", *_binary("image", [1], "BYTES", 6, b"\xff\0\0\0ab"), 400),
    ("BYTES count mismatch", *_binary("image", [2], "BYTES", 6, b"\2\0\0\0ab"), 400),
    (
        "unknown output",
        b'{"inputs": [{"name": "pixels", "shape": [1,1,28,28], "datatype": "FP32", "data": '
        + json.dumps([0.0] * 784).encode()
        + b'}], "outputs": [{"name": "logits"}]}',
        {},
        400,
    ),
    ("compressed", b"\x1f\x8b", {"Content-Encoding": "gzip"}, 415),
]


@pytest.mark.parametrize(("body", "headers", "status"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_protocol_errors(client, body: bytes, headers: dict, status: int) -> None:
    """Refusals are a 4xx with the protocol's {"error": ...}, never a 500."""
    r = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_api_keys_leave_v2_health_open() -> None:
    """With MNIST_API_KEYS, v2 probes need no key (as /livez and /readyz); infer does."""

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = ApiKeys(app, keys=["k"], open_paths=open_paths(Settings()))

    def status(path: str) -> int:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        asyncio.run(guard({"type": "http", "method": "GET", "path": path, "headers": []}, None, send))
        return sent[0]["status"]

    assert status("/v2/health/live") == status("/v2/health/ready") == 200
    assert status("/v2/models/mnist/infer") == status("/v2/models/mnist") == 401


def test_unknown_paths_are_404(client) -> None:
    body = {"inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}]}
    for path in ("/v2/models/nope/infer", "/v2/models/mnist/versions/nope/infer", "/v2/models/mnist/versions//infer"):
        r = client.post(path, json=body)
        assert r.status_code == 404 and "error" in r.json(), path
    assert client.get("/v2/models/nope").status_code == 404


@pytest.mark.slow
@pytest.mark.regression
def test_accuracy_equals_predict(triton_client, service_url, metadata, direct, mnist_test) -> None:
    """All 10,000 test digits: FP32 over v2 gives the graph's own answers, and PNGs over v2
    give exactly /predict's answers for the same PNGs."""
    images, labels = mnist_test
    name = metadata["inputs"][0]["name"]
    fp32, files = [], [png_bytes(img) for img in images]
    for i in range(0, len(images), 1000):
        result = triton_client.infer(MODEL, [_fp32_input(name, _pixels(images[i : i + 1000]), True)])
        fp32.append(result.as_numpy("label"))
    via_bytes = []
    for i in range(0, len(files), 500):
        tensor = triton.InferInput("image", [len(files[i : i + 500])], "BYTES")
        tensor.set_data_from_numpy(np.array(files[i : i + 500], dtype=np.object_), binary_data=True)
        via_bytes.append(triton_client.infer(MODEL, [tensor]).as_numpy("label"))
    with httpx.Client(base_url=service_url, timeout=60) as http, ThreadPoolExecutor(8) as pool:

        def predict(data: bytes) -> int:
            r = http.post("/predict", content=data, headers={"content-type": "image/png"})
            assert r.status_code == 200, r.text
            return r.json()["digit"]

        via_predict = np.array(list(pool.map(predict, files)))
    fp32, via_bytes = np.concatenate(fp32), np.concatenate(via_bytes)
    graph = direct[metadata["versions"][0]].probabilities(_pixels(images)).argmax(1)
    acc = {
        k: float((v == labels).mean())
        for k, v in {"v2 FP32": fp32, "graph": graph, "v2 PNG": via_bytes, "/predict PNG": via_predict}.items()
    }
    print("\naccuracy on the 10,000 MNIST test digits: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    np.testing.assert_array_equal(fp32, graph)
    np.testing.assert_array_equal(via_bytes, via_predict)
    assert acc["v2 PNG"] == acc["/predict PNG"]
