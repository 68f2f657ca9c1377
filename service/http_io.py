"""HTTP in and out of the image endpoints, read by us rather than by BentoML's default parser.

Why: /predict takes multipart *or* a raw image body, limits must hold while the body streams
in, and every refusal must be our 4xx JSON (BentoML's parser answers bad bodies in its own
shape, and fetches URLs given in place of files). A refused request still reaches the API
function as a BadInput item, so that it can answer it without an exception or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import bentoml
import numpy as np
from bentoml.validators import ContentType
from multipart import (
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from service.decode import check_size, decode
from service.errors import ACCEPTED_IMAGE, ACCEPTED_IMAGES, ACCEPTED_PIXELS, BadInput, too_large
from service.preprocess import to_mnist, to_mnist_many
from service.schemas import PixelsRequest, Prediction
from service.settings import Settings, get_settings

INLINE_BYTES = 4096  # uploads this small (a 28x28 PNG is ~300 B) are decoded on the event loop
RAW_TYPES = ("application/octet-stream",)


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, accepted: str) -> bytes:
    """The whole body, refused with a 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        check_size(int(declared), limit, accepted)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit, accepted)
        chunks.append(chunk)
    return b"".join(chunks)


def multipart_files(body: bytes, content_type: str, field: str, max_files: int,
                    accepted: str) -> list[bytes]:
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
    name, filename, chunks, parts = None, None, [], 0
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
        raise BadInput(
            f"{len(files)} images in one request, the limit is {max_files}", accepted, 413
        )
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
        return multipart_files(body, content_type, field, max_files, accepted)
    if not many and (kind.startswith("image/") or kind in RAW_TYPES):
        return [body]
    sent = kind or "no Content-Type"
    raise BadInput(f"unsupported request content type ({sent})", accepted, 415)


def pixels_of(data: bytes, settings: Settings, accepted: str) -> np.ndarray:
    """One upload -> (28, 28) float32 the model sees; BadInput if it is not a usable image."""
    return to_mnist(decode(data, max_pixels=settings.max_image_pixels, accepted=accepted))


async def pixels_async(data: bytes, settings: Settings, accepted: str) -> np.ndarray:
    """Decode small uploads in place and big ones in a worker thread, off the event loop."""
    if len(data) <= INLINE_BYTES:
        return pixels_of(data, settings, accepted)
    return await anyio.to_thread.run_sync(pixels_of, data, settings, accepted)


def many_pixels(blobs: Sequence[bytes], settings: Settings) -> np.ndarray:
    """(N, 28, 28) float32; a bad image fails the request and is named by its position."""
    accepted = accepted_images(settings)
    images = []
    for i, data in enumerate(blobs):
        try:
            images.append(decode(data, max_pixels=settings.max_image_pixels, accepted=accepted))
        except BadInput as exc:
            raise exc.at(i) from None
    return to_mnist_many(images)


ImageFile = Annotated[Path, ContentType("image/*")]


class ImageInput(bentoml.IODescriptor):
    """One image: multipart field `image`, or the raw body with an image/* Content-Type."""

    image: ImageFile = Field(description="the image: PNG, JPEG, BMP, GIF, WebP or TIFF")

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImageInput:
        """-> image=[(28, 28) float32 pixels] or image=[BadInput]."""
        settings = get_settings()
        try:
            (data,) = await upload_bytes(request, settings, many=False)
            item: np.ndarray | BadInput = await pixels_async(data, settings, ACCEPTED_IMAGE)
        except BadInput as exc:
            item = exc
        return cls.model_construct(image=[item])


class ImagesInput(bentoml.IODescriptor):
    """Many images: the multipart field `images`, repeated."""

    images: list[ImageFile] = Field(description="the images, answered in the same order")

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> ImagesInput:
        """-> images=[upload bytes] (decoded by the API, in the same thread as the model),
        or images=BadInput."""
        try:
            value: list[bytes] | BadInput = await upload_bytes(request, get_settings(), many=True)
        except BadInput as exc:
            value = exc
        return cls.model_construct(images=value)


class PixelsInput(PixelsRequest, bentoml.IODescriptor):
    """JSON {"images": [28x28 arrays]}, validated by pydantic; errors become BadInput."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> PixelsInput:
        """-> images=(N, 28, 28) float32 pixels, or images=BadInput."""
        settings = get_settings()
        limit = settings.max_images_per_request
        accepted = ACCEPTED_PIXELS.format(max_images=limit)
        try:
            body = await read_body(request, settings.max_upload_bytes, accepted)
            value: np.ndarray | BadInput = _parse_pixels(body, limit, accepted)
        except BadInput as exc:
            value = exc
        return cls.model_construct(images=value)


def _parse_pixels(body: bytes, limit: int, accepted: str) -> np.ndarray:
    """Validate a /predict_pixels body into (N, 28, 28) float32 in [0, 1]."""
    if not body.strip():
        raise BadInput("the request body is empty", accepted)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON ({exc})", accepted) from None
    images = payload.get("images") if isinstance(payload, dict) else None
    if isinstance(images, list) and len(images) > limit:
        raise BadInput(f"{len(images)} images in one request, the limit is {limit}", accepted, 413)
    try:
        return PixelsRequest.model_validate(payload).stack()
    except ValidationError as exc:
        raise BadInput(validation_message(exc), accepted, 422) from None


def validation_message(exc: ValidationError) -> str:
    """pydantic's first complaint, as one line a person can act on."""
    first = exc.errors(include_url=False)[0]
    if not first["loc"]:
        return 'the body must be a JSON object with an "images" list'
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if message.startswith(f"{where}["):  # our validators already name the image
        return f"{message}{more}"
    return f"{where}: {message}{more}"


class PredictionOutput(Prediction, bentoml.IODescriptor):
    """/predict's answer: one Prediction (as JSON bytes from prediction_answers), or the
    request's 4xx if its upload was refused."""

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        (item,) = obj  # the batch is split back per request: a list of one
        if isinstance(item, BadInput):
            return error_response(item)
        return Response(item, media_type="application/json")


def error_response(exc: BadInput) -> Response:
    """Our 4xx: {"error": ..., "accepted": ...}."""
    return Response(exc.to_json(), status_code=exc.status, media_type="application/json")
