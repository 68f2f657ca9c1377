"""Open Inference Protocol tensors in and out: JSON data and the binary tensor data extension.

Pure functions over bytes, tested without a server. A body is either all JSON, or a JSON
header of Inference-Header-Content-Length bytes followed by the raw tensors, in input
order, of every input whose parameters carry binary_data_size. Raw FP32 is little-endian;
raw BYTES is each element as a 4-byte little-endian length and its bytes. JSON has no
bytes type, so in the JSON form each BYTES element (an image file) is base64 text.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from service.errors import BadInput
from service.v2.schemas import InferRequest, RequestInput

HEADER = "inference-header-content-length"
FP32, BYTES, INT64, BOOL = "FP32", "BYTES", "INT64", "BOOL"
SIDE = 28

ACCEPTED = (
    "an Open Inference Protocol infer request with one input: FP32 pixels of shape "
    "[N, 1, 28, 28] in [0, 1] (white digit on black), or BYTES of shape [N], each an image "
    "file (PNG, JPEG, BMP, GIF, WebP or TIFF; base64 text in JSON form, raw bytes with the "
    "binary tensor data extension); 1 to {max_images} images per request"
)


@dataclass(frozen=True)
class Wanted:
    """One output to answer with, and whether as binary data."""

    name: str
    binary: bool


def split_body(body: bytes, header_length: str | None, accepted: str) -> tuple[InferRequest, bytes]:
    """-> (the request, the binary part after its JSON header; b"" without the extension)."""
    if header_length is None:
        header, rest = body, b""
    else:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise BadInput(
                f"Inference-Header-Content-Length {header_length!r} is not a length within the {len(body)} byte body",
                accepted,
            )
        size = int(header_length)
        header, rest = body[:size], body[size:]
    if not header.strip():
        raise BadInput("the request body is empty", accepted)
    try:
        payload = json.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the request header is not valid JSON ({exc})", accepted) from None
    try:
        return InferRequest.model_validate(payload), rest
    except ValidationError as exc:
        raise BadInput(_first_error(exc), accepted, 422) from None


def _first_error(exc: ValidationError) -> str:
    """pydantic's first complaint as one line: where, and what."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "the request"
    return f"{where}: {first['msg']}"


def input_bytes(tensor: RequestInput, binary: bytes, accepted: str) -> bytes | None:
    """The input's raw bytes from the binary part (None when its data is JSON); the
    request has one input, so its binary data is the whole binary part."""
    size = tensor.parameters.get("binary_data_size")
    if size is None:
        if binary:
            raise BadInput(
                f"{len(binary)} bytes of binary data but no input declares parameters.binary_data_size", accepted
            )
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise BadInput(
            f"input {tensor.name!r} declares binary_data_size {size!r}, "
            f"the body carries {len(binary)} bytes after its header",
            accepted,
        )
    return binary


def batch_size(tensor: RequestInput, max_images: int, accepted: str) -> int:
    """N, the first dimension, refused unless 1 <= N <= max_images (413 above)."""
    if not tensor.shape or any(d < 0 for d in tensor.shape):
        raise BadInput(f"input {tensor.name!r} has shape {tensor.shape}", accepted)
    n = tensor.shape[0]
    if n > max_images:
        raise BadInput(f"{n} images in one request, the limit is {max_images}", accepted, 413)
    if n < 1:
        raise BadInput(f"input {tensor.name!r} has no images (shape {tensor.shape})", accepted)
    return n


def read_pixels(tensor: RequestInput, raw: bytes | None, max_images: int, accepted: str) -> np.ndarray:
    """FP32 [N, 1, 28, 28] in [0, 1] -> (N, 28, 28) float32."""
    if tensor.datatype != FP32:
        raise BadInput(f"input {tensor.name!r} must be FP32, got {tensor.datatype}", accepted)
    n = batch_size(tensor, max_images, accepted)
    if tensor.shape != [n, 1, SIDE, SIDE]:
        raise BadInput(f"input {tensor.name!r} has shape {tensor.shape}, expected [N, 1, 28, 28]", accepted)
    if raw is not None:
        if len(raw) != n * SIDE * SIDE * 4:
            raise BadInput(
                f"input {tensor.name!r}: {len(raw)} bytes of FP32 data, shape "
                f"{tensor.shape} needs {n * SIDE * SIDE * 4}",
                accepted,
            )
        pixels = np.frombuffer(raw, "<f4")
    else:
        try:
            values = np.asarray(tensor.data)
        except ValueError:  # ragged nesting
            raise BadInput(f"input {tensor.name!r}: data is not a regular array", accepted) from None
        if values.dtype == np.bool_ or values.dtype.kind not in "iuf":
            raise BadInput(f"input {tensor.name!r}: data must be numbers", accepted)
        if values.size != n * SIDE * SIDE:
            raise BadInput(
                f"input {tensor.name!r}: {values.size} values, shape {tensor.shape} needs {n * SIDE * SIDE}", accepted
            )
        pixels = values.astype(np.float32)
    pixels = pixels.reshape(n, SIDE, SIDE)  # (N, 28, 28) float32
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise BadInput(f"input {tensor.name!r}: pixel values must be finite and lie in [0, 1]", accepted)
    return pixels


def read_images(tensor: RequestInput, raw: bytes | None, max_images: int, accepted: str) -> list[bytes]:
    """BYTES [N] (or [N, 1]) -> N image files."""
    if tensor.datatype != BYTES:
        raise BadInput(f"input {tensor.name!r} must be BYTES, got {tensor.datatype}", accepted)
    n = batch_size(tensor, max_images, accepted)
    if tensor.shape not in ([n], [n, 1]):
        raise BadInput(f"input {tensor.name!r} has shape {tensor.shape}, expected [N]", accepted)
    files = _unpack_bytes(raw, accepted) if raw is not None else _base64_items(tensor, accepted)
    if len(files) != n:
        raise BadInput(f"input {tensor.name!r}: {len(files)} elements, shape {tensor.shape} needs {n}", accepted)
    return files


def _unpack_bytes(raw: bytes, accepted: str) -> list[bytes]:
    """Triton's serialised BYTES: repeated (uint32 little-endian length, bytes)."""
    files: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise BadInput("BYTES data ends inside an element's 4-byte length", accepted)
        (size,) = struct.unpack_from("<I", raw, pos)
        if pos + 4 + size > len(raw):
            raise BadInput(f"BYTES element {len(files)} claims {size} bytes, past the data's end", accepted)
        files.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return files


def _base64_items(tensor: RequestInput, accepted: str) -> list[bytes]:
    """JSON BYTES data: a (possibly nested) list of base64 strings."""
    items = np.asarray(tensor.data, dtype=object).ravel().tolist() if tensor.data is not None else []
    files = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise BadInput(f"input {tensor.name!r}[{i}] must be a base64 string in JSON form", accepted)
        try:
            files.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise BadInput(
                f"input {tensor.name!r}[{i}] is not valid base64 (send raw bytes with "
                "the binary tensor data extension instead)",
                accepted,
            ) from None
    return files


def wanted_outputs(request: InferRequest, known: list[str], accepted: str) -> list[Wanted]:
    """Which outputs to answer with, in the order asked, and which as binary data
    (binary_data per output, else the request's binary_data_output, else JSON)."""
    default = _flag(request.parameters.get("binary_data_output", False))
    if request.outputs is None:
        return [Wanted(name, default) for name in known]
    wanted = []
    for out in request.outputs:
        if out.name not in known:
            raise BadInput(f"unknown output {out.name!r}; this model has {known}", accepted)
        if "classification" in out.parameters:
            raise BadInput(
                f"output {out.name!r}: the classification extension is not supported; ask for the label output",
                accepted,
            )
        wanted.append(Wanted(out.name, _flag(out.parameters.get("binary_data", default))))
    return wanted


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def encode_response(
    header: dict[str, object], tensors: dict[str, tuple[str, np.ndarray]], wanted: list[Wanted]
) -> tuple[bytes, dict[str, str]]:
    """-> (body, extra headers): JSON, or a JSON header plus raw tensors when any output is
    binary. tensors: output name -> (datatype, array)."""
    outputs, blobs = [], []
    for want in wanted:
        datatype, array = tensors[want.name]
        entry: dict[str, object] = {"name": want.name, "datatype": datatype, "shape": list(array.shape)}
        if want.binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        outputs.append(entry)
    head = json.dumps({**header, "outputs": outputs}).encode()
    if not blobs:
        return head, {}
    return b"".join([head, *blobs]), {"Inference-Header-Content-Length": str(len(head))}
