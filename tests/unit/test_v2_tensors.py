"""Open Inference Protocol tensors without a server: what tritonclient writes, we read; what
we write, tritonclient reads; and what we refuse, we refuse with a 4xx BadInput."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import serialize_byte_tensor

from service.errors import BadInput
from service.v2.schemas import RequestInput
from service.v2.tensors import (
    Wanted,
    encode_response,
    input_bytes,
    read_images,
    read_pixels,
    split_body,
    wanted_outputs,
)

pytestmark = pytest.mark.unit
LIMIT = 1024


def _as_sent(tensor: triton.InferInput, outputs: list | None = None) -> tuple[bytes, str | None]:
    """The body and Inference-Header-Content-Length tritonclient would send."""
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    return body, None if json_size is None else str(json_size)


def _read(body: bytes, header: str | None):
    request, binary = split_body(body, header, "accepted")
    (tensor,) = request.inputs
    return request, tensor, input_bytes(tensor, binary, "accepted")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_fp32_as_tritonclient_sends_it(binary: bool) -> None:
    pixels = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32").set_data_from_numpy(pixels, binary_data=binary)
    _, tensor_in, raw = _read(*_as_sent(tensor))
    assert (raw is not None) == binary
    np.testing.assert_array_equal(read_pixels(tensor_in, raw, LIMIT, "accepted"), pixels[:, 0])


def test_nested_json_data_is_row_major() -> None:
    pixels = np.linspace(0, 1, 2 * 784, dtype=np.float32).reshape(2, 1, 28, 28)
    body = json.dumps(
        {"inputs": [{"name": "pixels", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": pixels.tolist()}]}
    ).encode()
    _, tensor, raw = _read(body, None)
    np.testing.assert_array_equal(read_pixels(tensor, raw, LIMIT, "a"), pixels[:, 0])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-base64"])
def test_bytes_as_tritonclient_sends_them(binary: bool) -> None:
    files = [b"\x89PNG first", b"", b"\xff\xd8 third \x00 with a zero"]
    elements = files if binary else [base64.b64encode(f) for f in files]
    tensor = triton.InferInput("image", [3], "BYTES")
    tensor.set_data_from_numpy(np.array(elements, dtype=np.object_), binary_data=binary)
    _, tensor_in, raw = _read(*_as_sent(tensor))
    assert read_images(tensor_in, raw, LIMIT, "a") == files


def test_bytes_serialisation_matches_tritons() -> None:
    files = [b"a", b"bc" * 300]
    raw = serialize_byte_tensor(np.array(files, dtype=np.object_)).item()
    body = json.dumps(
        {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    _, tensor, data = _read(body + raw, str(len(body)))
    assert read_images(tensor, data, LIMIT, "a") == files


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_reads_our_answers(binary: bool) -> None:
    probs = np.random.default_rng(1).random((4, 10), dtype=np.float32)
    labels = probs.argmax(1).astype(np.int64)
    wanted = [Wanted("label", binary), Wanted("probabilities", binary)]
    body, headers = encode_response(
        {"model_name": "mnist", "model_version": "v", "id": "x"},
        {"probabilities": ("FP32", probs), "label": ("INT64", labels)},
        wanted,
    )
    length = headers.get("Inference-Header-Content-Length")
    assert (length is not None) == binary
    result = triton.InferResult.from_response_body(body, header_length=None if length is None else int(length))
    np.testing.assert_array_equal(result.as_numpy("label"), labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probs)
    assert result.get_response()["id"] == "x"


def test_which_outputs_and_how() -> None:
    def wanted(payload: dict) -> list[Wanted]:
        payload = {"inputs": [{"name": "p", "shape": [1], "datatype": "FP32"}], **payload}
        request, _ = split_body(json.dumps(payload).encode(), None, "a")
        return wanted_outputs(request, ["probabilities", "label"], "a")

    assert wanted({}) == [Wanted("probabilities", False), Wanted("label", False)]
    assert wanted({"parameters": {"binary_data_output": True}}) == [
        Wanted("probabilities", True),
        Wanted("label", True),
    ]
    assert wanted({"outputs": [{"name": "label", "parameters": {"binary_data": True}}]}) == [Wanted("label", True)]
    assert wanted({"parameters": {"binary_data_output": True}, "outputs": [{"name": "label"}]}) == [
        Wanted("label", True)
    ]
    with pytest.raises(BadInput, match="unknown output") as err:
        wanted({"outputs": [{"name": "logits"}]})
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("body", "header", "status", "match"),
    [
        (b"", None, 400, "empty"),
        (b"[1, 2]", None, 422, "the request"),
        (b'{"inputs": [{"name": "p"}]}', None, 422, "inputs.0.shape"),
        (b'{"inputs": []}', "x", 400, "Inference-Header-Content-Length"),
        (b'{"inputs": []}', "-1", 400, "Inference-Header-Content-Length"),
        (b'{"inputs": []}', "99", 400, "Inference-Header-Content-Length"),
    ],
)
def test_bodies_refused(body: bytes, header: str | None, status: int, match: str) -> None:
    with pytest.raises(BadInput, match=match) as err:
        split_body(body, header, "a")
    assert err.value.status == status


@pytest.mark.parametrize(
    ("tensor", "raw", "status", "match"),
    [
        ({"shape": [1, 1, 28, 28], "datatype": "FP64"}, None, 400, "must be FP32"),
        ({"shape": [2, 1, 28, 28], "datatype": "FP32"}, b"\0" * 3136, 400, "6272"),
        ({"shape": [0, 1, 28, 28], "datatype": "FP32", "data": []}, None, 400, "no images"),
        ({"shape": [2000, 1, 28, 28], "datatype": "FP32"}, None, 413, "limit is 1024"),
        ({"shape": [1, 1, 28, 28], "datatype": "FP32", "data": [[1, 2], [3]]}, None, 400, "regular array"),
        ({"shape": [1, 1, 28, 28], "datatype": "FP32", "data": [float("nan")] * 784}, None, 400, "finite"),
        ({"shape": [1, 1, 28, 28], "datatype": "FP32", "data": [True] * 784}, None, 400, "numbers"),
    ],
)
def test_pixels_refused(tensor: dict, raw: bytes | None, status: int, match: str) -> None:
    with pytest.raises(BadInput, match=match) as err:
        read_pixels(RequestInput(name="pixels", **tensor), raw, LIMIT, "a")
    assert err.value.status == status


@pytest.mark.parametrize(
    ("tensor", "raw", "match"),
    [
        ({"shape": [1], "datatype": "FP32"}, b"", "must be BYTES"),
        ({"shape": [1, 2], "datatype": "BYTES", "data": ["", ""]}, None, "expected \\[N\\]"),
        ({"shape": [1], "datatype": "BYTES"}, b"\x05\0\0\0ab", "past the data's end"),
        ({"shape": [1], "datatype": "BYTES"}, b"\x01\0", "4-byte length"),
        ({"shape": [2], "datatype": "BYTES"}, b"\x01\0\0\0a", "1 elements"),
        ({"shape": [1], "datatype": "BYTES", "data": [3]}, None, "base64 string"),
        ({"shape": [1], "datatype": "BYTES", "data": ["not base64!"]}, None, "not valid base64"),
    ],
)
def test_images_refused(tensor: dict, raw: bytes | None, match: str) -> None:
    with pytest.raises(BadInput, match=match) as err:
        read_images(RequestInput(name="image", **tensor), raw, LIMIT, "a")
    assert err.value.status == 400


def test_binary_part_must_match_its_declaration() -> None:
    declared = RequestInput(name="p", shape=[1], datatype="FP32", parameters={"binary_data_size": 4})
    with pytest.raises(BadInput, match="binary_data_size"):
        input_bytes(declared, b"\0" * 3, "a")
    with pytest.raises(BadInput, match="no input declares"):
        input_bytes(RequestInput(name="p", shape=[1], datatype="FP32"), b"\0", "a")
