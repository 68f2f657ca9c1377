"""The Open Inference Protocol (KServe v2 REST, the API Triton implements) on this service.

GET routes (server and model metadata, health, readiness) live in a small Starlette app
(service.v2.routes) mounted beside BentoML's routes. Infer is a batchable BentoML API,
MnistService.v2_infer, whose route is a Starlette path pattern: BentoML hands each API's
route to Starlette and gives each batchable API one CorkDispatcher, and an IODescriptor's
input spec sees the request's path parameters. So every v2 infer request, for any
version, with or without /versions/{version}, joins one adaptive-batching queue with the same
max_batch_size and max_latency_ms as /predict, and each batch runs once per version on the
worker's sessions. BentoML keeps one dispatcher per API (ServiceAppFactory.dispatchers, with
one callback each) and offers no way for a route or another API to enqueue into /predict's,
so v2 batches are coalesced across v2 callers and share the model, not /predict's queue.

Inputs go through the same limits (body bytes, images per request, pixels per image) and,
for BYTES, the same decode and MNIST framing as /predict; every refusal is a BadInput 4xx
whose JSON carries the protocol's "error" key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bentoml
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from service.errors import BadInput, error_response
from service.images.frames import frames_of
from service.model import Classifier, ModelError, Outputs, resolve
from service.server.internals import ReadsRequest, WritesResponse
from service.settings import Settings, get_settings
from service.transport.body import HeldBody, parse_off_loop
from service.transport.limits import budget, decode_threads
from service.v2.schemas import InferRequest, InferResponse, ModelMetadata, TensorMetadata
from service.v2.tensors import (
    ACCEPTED,
    BOOL,
    BYTES,
    FP32,
    HEADER,
    INT64,
    Wanted,
    encode_response,
    input_bytes,
    read_images,
    read_pixels,
    split_body,
    wanted_outputs,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "mnist"  # the model's name in v2 paths; versions are models/ folder names
IMAGE_INPUT = "image"  # BYTES [N]: encoded image files, decoded and framed as /predict does
LABEL_OUTPUT = "label"  # INT64 [N]: the most probable digit
IS_DIGIT_OUTPUT = "is_digit"  # BOOL [N], with a digit detector: digit_score >= the threshold in force
PLATFORM = "onnxruntime_onnx"
# One route for both infer paths: {model} is "mnist" or "mnist/versions/<version>".
INFER_ROUTE = "/v2/models/{model:path}/infer"


def infer_paths(served: str, named: list[str]) -> frozenset[str]:
    """The concrete infer paths of the served version and those served.json names, for
    middleware that matches exact paths (traffic.Deadline's 504 and 503 in our JSON)."""
    base = f"/v2/models/{MODEL_NAME}"
    return frozenset([f"{base}/infer", *(f"{base}/versions/{v}/infer" for v in [served, *named])])


def accepted(settings: Settings) -> str:
    return ACCEPTED.format(max_images=settings.max_images_per_request)


class Versions:
    """The model versions this worker answers for: the served one (the default) and the
    earlier ones served.json lists, each an onnxruntime session loaded at start. They run
    one batch at a time on the worker's thread budget, so workers x threads still holds."""

    def __init__(self, default: Classifier, settings: Settings, named: list[str]) -> None:
        """named: served.json's versions, as the service read it at start-up."""
        self.default = default.version
        self.models: dict[str, Classifier] = {default.version: default}
        for version in named:
            if version in self.models:
                continue
            try:
                files = resolve(settings.models_dir, version)
            except ModelError:
                logger.info("v2: %s is in neither %s nor the model store: not served", version, settings.models_dir)
                continue
            try:
                model = Classifier(files, settings.provider, settings.threads_per_worker, spinning=settings.spinning)
                model.warm_up()
            except ModelError as exc:  # a broken old version must not stop the served one
                logger.warning("v2: version %s is not servable: %s", version, exc)
                continue
            self.models[version] = model

    def names(self) -> list[str]:
        """Addressable versions, the default first."""
        return list(self.models)

    def find(self, name: str, version: str | None) -> Classifier:
        """The model a path names; 404 for another model name or an unknown version."""
        if name != MODEL_NAME:
            raise BadInput(f"unknown model {name!r}", f"model {MODEL_NAME!r}", 404)
        model = self.models.get(version or self.default)
        if model is None:
            raise BadInput(f"unknown version {version!r} of model {name!r}", f"one of the versions {self.names()}", 404)
        return model

    def metadata(self, model: Classifier, versions: list[str]) -> ModelMetadata:
        """Model metadata from the version's metadata.json: graph input and outputs, plus the
        BYTES image input and the label (and, with a detector, is_digit) outputs this service adds."""
        meta = model.meta
        batch = [-1 if isinstance(d, str) else int(d) for d in meta.input.shape]
        probs = meta.outputs.probabilities
        detector = (
            [
                TensorMetadata(name=model.score_name, datatype=FP32, shape=[-1]),
                TensorMetadata(name=IS_DIGIT_OUTPUT, datatype=BOOL, shape=[-1]),
            ]
            if model.score_name
            else []
        )
        return ModelMetadata(
            name=MODEL_NAME,
            versions=versions,
            platform=PLATFORM,
            inputs=[
                TensorMetadata(name=meta.input.name, datatype=FP32, shape=batch),
                TensorMetadata(name=IMAGE_INPUT, datatype=BYTES, shape=[-1]),
            ],
            outputs=[
                TensorMetadata(
                    name=probs.name,
                    datatype=FP32,
                    shape=[-1 if isinstance(d, str) else int(d) for d in probs.shape],
                ),
                TensorMetadata(name=LABEL_OUTPUT, datatype=INT64, shape=[-1]),
                *detector,
            ],
        )

    def run(self, items: list[Any], default: Callable[[np.ndarray], Outputs]) -> list[Any]:
        """One batch of Items from any number of requests -> (call, Row) per item, in order;
        refused requests' BadInputs pass through. Each version runs once; the default version
        through `default` (the service's way to the model, with its metrics)."""
        out: list[Any] = list(items)
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, Item):
                groups.setdefault(item.call.version, []).append(i)
        for version, where in groups.items():
            pixels = np.stack([items[i].pixels for i in where])  # (n, 28, 28) float32
            run = default if version == self.default else self.models[version].run
            found = run(pixels)  # (n, 10) probabilities, and (n,) digit scores and flags
            for k, i in enumerate(where):
                score = None if found.digit_score is None else float(found.digit_score[k])
                flag = None if found.is_digit is None else bool(found.is_digit[k])
                out[i] = (items[i].call, Row(found.probabilities[k], score, flag))
        return out


@dataclass(eq=False)
class Call:
    """What one infer request needs back from its batch: whom to name and what to send."""

    version: str
    labels: list[int]
    output_name: str
    request_id: str | None
    wanted: list[Wanted]
    score_name: str | None = None  # the digit detector's output, when the version has one


@dataclass(frozen=True)
class Row:
    """One image's answer from its batch."""

    probabilities: np.ndarray  # (10,) float32
    digit_score: float | None = None
    is_digit: bool | None = None


@dataclass(eq=False)
class Item:
    """One image of one request in the batch queue."""

    call: Call
    pixels: np.ndarray  # (28, 28) float32 in [0, 1]


class Loaded:
    """This worker's versions, once the service instance has loaded them (None until then):
    the handle v2's input spec and GET routes read, filled in by MnistService.__init__."""

    versions: Versions | None = None


LOADED = Loaded()  # this worker's (one service instance per worker process)


def _model_path(model: str) -> tuple[str, str | None]:
    """'mnist' or 'mnist/versions/<v>' -> (name, version or None)."""
    name, sep, version = model.partition("/versions/")
    if sep and (not version or "/" in version):
        raise BadInput(f"no such path /v2/models/{model}", "/v2/models/{name}[/versions/{version}]", 404)
    return name, version if sep else None


def read_tensors(
    body: bytes, header_length: str | None, model: Classifier, limit: int, text: str
) -> tuple[InferRequest, np.ndarray | list[bytes]]:
    """A body -> (the request, (N, 28, 28) float32 pixels or N image files)."""
    infer, binary = split_body(body, header_length, text)
    (tensor,) = infer.inputs
    raw = input_bytes(tensor, binary, text)
    pixel_input = model.input_name
    if tensor.name == pixel_input:
        return infer, read_pixels(tensor, raw, limit, text)
    if tensor.name == IMAGE_INPUT:
        return infer, read_images(tensor, raw, limit, text)
    raise BadInput(
        f"unknown input {tensor.name!r}; this model takes {pixel_input!r} (FP32) or {IMAGE_INPUT!r} (BYTES)", text
    )


async def parse_infer(request: Request, versions: Versions, settings: Settings) -> list[Item]:
    """An infer request -> one Item per image; BadInput for anything we refuse.

    The image endpoints' bounds hold: the body counts against the worker's bodies in flight
    until its images are framed, and a body of more than INLINE_BYTES is parsed in a decode
    thread (JSON parsing still holds the GIL: 16 MB of FP32 JSON, 0.2 s; binary tensors cost
    a copy).
    """
    text = accepted(settings)
    limits = budget(settings)  # before the body: the deadline runs from the request's arrival
    name, version = _model_path(request.path_params.get("model", ""))
    model = versions.find(name, version)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise BadInput(f"Content-Encoding {encoding} is not supported", text, 415)
    limit, header_length = settings.max_images_per_request, request.headers.get(HEADER)
    async with HeldBody(request, settings, text) as body:
        infer, tensor = await parse_off_loop(read_tensors, body, header_length, model, limit, text, accepted=text)
        del body
        # BYTES: /predict_batch's path (pixel budgets, decode threads, deadline, framing)
        pixels = tensor if isinstance(tensor, np.ndarray) else await frames_of(tensor, limits, text, decode_threads())
    output_name = model.output_name
    known = [output_name, LABEL_OUTPUT, *([model.score_name, IS_DIGIT_OUTPUT] if model.score_name else [])]
    wanted = wanted_outputs(infer, known, text)
    call = Call(model.version, model.labels, output_name, infer.id, wanted, model.score_name)
    return [Item(call, frame) for frame in pixels]


class InferInput(ReadsRequest, bentoml.IODescriptor):
    """An Open Inference Protocol infer request (JSON, or the binary tensor data extension)."""

    items: list[Any]

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """/docs.json's request body: the protocol's infer request, which from_http_request reads."""
        return InferRequest.model_json_schema(*args, **kwargs)

    @classmethod
    async def read(cls, request: Request) -> InferInput:
        """-> items=[Item per image], or items=[BadInput] for a refused request."""
        settings = get_settings()
        versions = LOADED.versions
        try:
            if versions is None:
                raise BadInput("the model is not loaded yet", "retry shortly", 503)
            value: list[Any] = await parse_infer(request, versions, settings)
        except BadInput as exc:
            value = [exc]
        spec: InferInput = cls.model_construct(items=value)
        return spec


class InferOutput(WritesResponse, bentoml.IODescriptor):
    """The infer response: this request's rows of the batch, as the request asked."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """/docs.json's answer: the protocol's infer response."""
        return InferResponse.model_json_schema(*args, **kwargs)

    @classmethod
    def respond(cls, obj: Any) -> Response:
        if isinstance(obj[0], BadInput):
            return error_response(obj[0])
        call: Call = obj[0][0]
        rows: list[Row] = [row for _, row in obj]
        probs = np.stack([row.probabilities for row in rows]).astype(np.float32)  # (N, 10)
        labels = np.asarray(call.labels, np.int64)[probs.argmax(axis=1)]  # (N,)
        header: dict[str, object] = {"model_name": MODEL_NAME, "model_version": call.version}
        if call.request_id is not None:
            header["id"] = call.request_id
        tensors = {call.output_name: (FP32, probs), LABEL_OUTPUT: (INT64, labels)}
        if call.score_name is not None:
            scores = np.array([row.digit_score for row in rows], np.float32)  # (N,)
            tensors[call.score_name] = (FP32, scores)
            tensors[IS_DIGIT_OUTPUT] = (BOOL, np.array([row.is_digit for row in rows], np.bool_))  # (N,)
        body, headers = encode_response(header, tensors, call.wanted)
        kind = "application/octet-stream" if headers else "application/json"
        return Response(body, headers=headers, media_type=kind)
