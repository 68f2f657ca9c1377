"""HTTP in and out of the image endpoints, read by us rather than by BentoML's default parser.

Every image endpoint's input spec is the same line: transport (the body, byte limits while it
streams in, multipart or raw) -> frames (service.frames: decode and frame, under the request's
pixel budget, off the event loop when it costs more than a little). The API method gets
(N, 28, 28) frames and only runs the model. Every refusal, found anywhere on that line, is a
BadInput that travels in place of the frames and the answer, and is turned into our JSON in
one place: error_response, called by the output specs and by service.traffic.

Why our own parsing: /predict takes multipart *or* a raw image body, limits must hold while
the body streams in, and every refusal must be our 4xx JSON (BentoML's parser answers bad
bodies in its own shape, and fetches URLs given in place of files).
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar

import bentoml
import numpy as np
from _bentoml_sdk.io_models import IORootModel
from bentoml.validators import ContentType
from multipart import (
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from service.errors import (
    ACCEPTED_IMAGE,
    ACCEPTED_IMAGES,
    ACCEPTED_PIXELS,
    RETRY_AFTER_S,
    BadInput,
    overloaded,
    too_large,
)
from service.frames import INLINE_BYTES, Budget, DecodeThreads, frames_of, region_of
from service.schemas import PixelsRequest, Prediction, parse_pixels
from service.settings import Settings, get_settings

RAW_TYPES = ("application/octet-stream",)

Frames = np.ndarray | BadInput  # (N, 28, 28) float32 in [0, 1], or the request's refusal
Answer = bytes | BadInput  # JSON (or PNG) bytes of the answer, or the request's refusal


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, accepted: str) -> bytes:
    """The whole body, refused with a 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large("the request body", limit, accepted)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit, accepted)
        chunks.append(chunk)
    return b"".join(chunks)


def multipart_files(body: bytes, content_type: str, field: str, max_files: int, accepted: str) -> list[bytes]:
    """The file parts named `field` of an in-memory multipart body.

    Parsed by `multipart`, about 3x cheaper per part than python-multipart's callback parser
    (a cost that showed in /predict_batch's profile), with header limits against hostile
    bodies; more than max_files + 100 parts stops the parse with a 413.
    """
    _, params = parse_options_header(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise BadInput("multipart body without a boundary in its Content-Type", accepted)
    files, texts, others = [], 0, []
    name, filename, parts = None, None, 0
    chunks: list[bytes] = []
    try:
        with PushMultipartParser(boundary) as parser:
            for event in parser.parse(body):
                if isinstance(event, MultipartSegment):
                    name, filename, chunks, parts = event.name, event.filename, [], parts + 1
                    if parts > max_files + 100:
                        raise BadInput(f"more than {max_files} images in one request", accepted, 413)
                elif event:
                    chunks.append(event)
                elif name != field:
                    others.append(name)
                elif filename is None:
                    texts += 1
                else:
                    files.append(b"".join(chunks))
    except MultipartError as exc:
        raise BadInput(f"malformed multipart body ({exc})", accepted) from None
    if texts:
        raise BadInput(f"multipart field {field!r} must be a file upload, not text", accepted)
    if not files:
        got = ", ".join(repr(k) for k in dict.fromkeys(others)) or "none"
        raise BadInput(f"no multipart field {field!r} (fields sent: {got})", accepted)
    if len(files) > max_files:
        raise BadInput(f"{len(files)} images in one request, the limit is {max_files}", accepted, 413)
    return files


def accepted_images(settings: Settings) -> str:
    """What /predict_batch accepts, with this server's limit on images per request."""
    return ACCEPTED_IMAGES.format(max_images=settings.max_images_per_request)


async def upload_bytes(request: Request, settings: Settings, *, many: bool) -> list[bytes]:
    """Image bytes from multipart field image/images, or (single only) the raw body."""
    accepted = accepted_images(settings) if many else ACCEPTED_IMAGE
    kind = media_type(request)
    body = await read_body(request, settings.max_upload_bytes, accepted)
    if kind == "multipart/form-data":
        max_files = settings.max_images_per_request if many else 1
        field = "images" if many else "image"
        content_type = request.headers["content-type"]
        if len(body) <= INLINE_BYTES:
            return multipart_files(body, content_type, field, max_files, accepted)
        # 20 MiB of parts take the event loop 40 ms to split: a decode thread's work
        return await decode_threads().run(
            multipart_files, body, content_type, field, max_files, accepted, accepted=accepted
        )
    if not many and (kind.startswith("image/") or kind in RAW_TYPES):
        return [body]
    if not body:
        raise BadInput("the request body is empty", accepted)
    sent = kind or "no Content-Type"
    raise BadInput(f"unsupported request content type ({sent})", accepted, 415)


def budget(settings: Settings) -> Budget:
    """This request's budget, its deadline counted from now (the request's arrival)."""
    return Budget(settings.max_image_pixels, settings.max_request_pixels, time.monotonic() + settings.timeout_s)


@functools.lru_cache(maxsize=1)
def decode_threads() -> DecodeThreads:
    """This worker's decode threads (one set per process)."""
    settings = get_settings()
    return DecodeThreads(settings.decode_threads, settings.decode_queue)


class BodiesInFlight:
    """The bytes of request bodies over INLINE_BYTES that a worker holds at once, bounded.

    Decode threads bound the memory of decoding; this bounds the bodies that wait for them
    (each held until its request is framed, a multipart one twice over while it is split).
    A body is counted by its Content-Length, or at the byte limit when it has none; one body
    always fits, and past the budget a request gets a 503 before its body is read.
    """

    def __init__(self, budget: int) -> None:
        self.budget, self.held = budget, 0

    def hold(self, request: Request, limit: int, accepted: str) -> contextlib.AbstractContextManager[None]:
        """Count this request's body while the returned context runs (small ones: nothing)."""
        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else limit
        if size <= INLINE_BYTES or size > limit:  # small, or read_body's 413 at once
            return NOTHING_HELD
        if self.held and self.held + size > self.budget:
            raise overloaded(accepted)
        return _Held(self, size)


NOTHING_HELD = contextlib.nullcontext()  # a tiny upload's hold: no generator per request


class _Held:
    """One body's bytes, counted from enter to exit."""

    def __init__(self, bodies: BodiesInFlight, size: int) -> None:
        self.bodies, self.size = bodies, size

    def __enter__(self) -> None:
        self.bodies.held += self.size

    def __exit__(self, *exc: object) -> None:
        self.bodies.held -= self.size


@functools.lru_cache(maxsize=1)
def bodies_in_flight() -> BodiesInFlight:
    """This worker's count of bodies in flight (one per process)."""
    return BodiesInFlight(get_settings().max_bytes_in_flight)


async def read_request(request: Request, *, many: bool, show_region: bool = False) -> Frames:
    """An image request from transport to frames: (N, 28, 28) float32, or its BadInput.
    show_region: one upload's region view instead (frames.region_of), (h, w, 3) uint8."""
    settings = get_settings()
    deadline = budget(settings)  # before the body: the clock runs from the request's arrival
    accepted = accepted_images(settings) if many else ACCEPTED_IMAGE
    try:
        with bodies_in_flight().hold(request, settings.max_upload_bytes, accepted):
            blobs = await upload_bytes(request, settings, many=many)
            if show_region:
                return await region_of(blobs, deadline, accepted, decode_threads())
            return await frames_of(blobs, deadline, accepted, decode_threads())
    except BadInput as exc:
        return exc


ImageFile = Annotated[Path, ContentType("image/*")]


class ImageInput(bentoml.IODescriptor):
    """One image: multipart field `image`, or the raw body with an image/* Content-Type."""

    image: ImageFile = Field(description="the image: PNG, JPEG, BMP, GIF, WebP or TIFF")

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImageInput:
        """-> image=[(28, 28) float32 frame] or image=[BadInput] (a list: /predict batches)."""
        frames = await read_request(request, many=False)
        item = frames if isinstance(frames, BadInput) else frames[0]
        spec: ImageInput = cls.model_construct(image=[item])
        return spec


SHOW = ("frame", "region")  # /preprocess?show=: the 28x28 frame, or the upload with its kept region


class PreprocessInput(ImageInput):
    """/preprocess's image, and `?show=region` for the upload with the region it kept drawn."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImageInput:
        """-> image=[(28, 28) float32 frame], [(h, w, 3) uint8 region view] or [BadInput]."""
        show = request.query_params.get("show", "frame")
        if show not in SHOW:
            item: np.ndarray | BadInput = BadInput(f"show={show!r} is not known", "show=frame or show=region", 400)
        else:
            frames = await read_request(request, many=False, show_region=show == "region")
            item = frames if isinstance(frames, BadInput) or show == "region" else frames[0]
        spec: ImageInput = cls.model_construct(image=[item])
        return spec


class ImagesInput(bentoml.IODescriptor):
    """Many images: the multipart field `images`, repeated."""

    images: list[ImageFile] = Field(description="the images, answered in the same order")

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImagesInput:
        """-> images=(N, 28, 28) float32 frames, or images=BadInput."""
        spec: ImagesInput = cls.model_construct(images=await read_request(request, many=True))
        return spec


class PixelsInput(PixelsRequest, bentoml.IODescriptor):
    """JSON {"images": [28x28 arrays]}, validated by pydantic; errors become BadInput."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> PixelsInput:
        """-> images=(N, 28, 28) float32 frames, or images=BadInput. Bodies of more than a
        few images are parsed in a decode thread: 17 MiB of JSON takes seconds."""
        settings = get_settings()
        limit = settings.max_images_per_request
        accepted = ACCEPTED_PIXELS.format(max_images=limit)
        try:
            with bodies_in_flight().hold(request, settings.max_upload_bytes, accepted):
                body = await read_body(request, settings.max_upload_bytes, accepted)
                if len(body) <= INLINE_BYTES:
                    value: Frames = parse_pixels(body, limit, accepted)
                else:
                    value = await decode_threads().run(parse_pixels, body, limit, accepted, accepted=accepted)
        except BadInput as exc:
            value = exc
        return cls.model_construct(images=value)


class PredictionOutput(Prediction, bentoml.IODescriptor):
    """/predict's answer: one Prediction (as JSON bytes from prediction_answers), or the
    request's refusal."""

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        (item,) = obj  # the batch is split back per request: a list of one
        return answer_response(item, "application/json")


class PredictionsOutput(IORootModel[list[Prediction]]):
    """A list of Predictions (JSON bytes from predictions_json), or the request's refusal."""

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        return answer_response(obj, "application/json")


class PngOutput(IORootModel[bytes]):
    """/preprocess's answer: the 28x28 frame as a PNG, or the request's refusal."""

    media_type: ClassVar[str | None] = "image/png"

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        return answer_response(obj, "image/png")


def answer_response(answer: Answer, media_type: str) -> Response:
    """An answer's bytes, or its refusal as our JSON."""
    if isinstance(answer, BadInput):
        return error_response(answer)
    return Response(answer, media_type=media_type)


def error_response(exc: BadInput) -> Response:
    """Our refusal: {"error": ..., "accepted": ...}, with a Retry-After when we are busy."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return Response(exc.to_json(), status_code=exc.status, media_type="application/json", headers=headers)
