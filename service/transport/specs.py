"""HTTP in and out of the image endpoints, read by us rather than by BentoML's default parser.

Every image endpoint's input spec is the same line: transport (the body, held and read under
its byte limits: transport.body; multipart or raw: transport.multipart) -> frames
(service.images.frames: decode and frame, under the request's pixel budget, off the event
loop when it costs more than a little). The API method gets (N, 28, 28) frames and only runs
the model. Every refusal, found anywhere on that line, is a BadInput that travels in place of
the frames and the answer, and is turned into our JSON in one place: errors.error_response,
called by the output specs, by v2 and by server.traffic.

Why our own parsing: /predict takes multipart *or* a raw image body, limits must hold while
the body streams in, and every refusal must be our 4xx JSON (BentoML's parser answers bad
bodies in its own shape, and fetches URLs given in place of files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from service.answers import NumberRead, Prediction
from service.errors import ACCEPTED_PIXELS, BadInput, error_response
from service.images.decode import Decoded
from service.images.frames import frames_of, region_of, upright_of
from service.server.internals import IORootModel, ReadsRequest, WritesResponse
from service.settings import get_settings
from service.transport.body import HeldBody, parse_off_loop
from service.transport.limits import budget, decode_threads
from service.transport.multipart import accepted_uploads, upload_bytes
from service.transport.pixels import PixelsRequest, parse_pixels

Frames = np.ndarray | BadInput  # (N, 28, 28) float32 in [0, 1], or the request's refusal
Upload = Decoded | BadInput  # one upload's pixels, upright (decode's), or the request's refusal
Answer = bytes | BadInput  # JSON (or PNG) bytes of the answer, or the request's refusal


async def read_request(request: Request, *, many: bool, show_region: bool = False) -> Frames:
    """An image request from transport to frames: (N, 28, 28) float32, or its BadInput.
    show_region: one upload's region view instead (frames.region_of), (h, w, 3) uint8."""
    settings = get_settings()
    deadline = budget(settings)  # before the body: the clock runs from the request's arrival
    accepted = accepted_uploads(settings, many=many)
    try:
        async with HeldBody(request, settings, accepted) as body:
            blobs = await upload_bytes(request, body, settings, many=many)
            if show_region:
                return await region_of(blobs, deadline, accepted, decode_threads())
            return await frames_of(blobs, deadline, accepted, decode_threads())
    except BadInput as exc:
        return exc


async def read_upload(request: Request) -> Upload:
    """One image request from transport to its upright pixels (decoded, not framed: for a reader
    that frames the upload itself), under the same limits as /predict; or its BadInput."""
    settings = get_settings()
    deadline = budget(settings)
    accepted = accepted_uploads(settings, many=False)
    try:
        async with HeldBody(request, settings, accepted) as body:
            blobs = await upload_bytes(request, body, settings, many=False)
            return await upright_of(blobs, deadline, accepted, decode_threads())
    except BadInput as exc:
        return exc


ImageFile = Annotated[Path, ContentType("image/*")]


class ImageInput(ReadsRequest, bentoml.IODescriptor):
    """One image: multipart field `image`, or the raw body with an image/* Content-Type."""

    image: ImageFile = Field(description="the image: PNG, JPEG, BMP, GIF, WebP or TIFF")

    @classmethod
    async def read(cls, request: Request) -> ImageInput:
        """-> image=[(28, 28) float32 frame] or image=[BadInput] (a list: /predict batches)."""
        frames = await read_request(request, many=False)
        item = frames if isinstance(frames, BadInput) else frames[0]
        spec: ImageInput = cls.model_construct(image=[item])
        return spec


SHOW = ("frame", "region")  # /preprocess?show=: the 28x28 frame, or the upload with its kept region


class PreprocessInput(ImageInput):
    """/preprocess's image, and `?show=region` for the upload with the region it kept drawn."""

    @classmethod
    async def read(cls, request: Request) -> ImageInput:
        """-> image=[(28, 28) float32 frame], [(h, w, 3) uint8 region view] or [BadInput]."""
        show = request.query_params.get("show", "frame")
        if show not in SHOW:
            item: np.ndarray | BadInput = BadInput(f"show={show!r} is not known", "show=frame or show=region", 400)
        else:
            frames = await read_request(request, many=False, show_region=show == "region")
            item = frames if isinstance(frames, BadInput) or show == "region" else frames[0]
        spec: ImageInput = cls.model_construct(image=[item])
        return spec


class NumberInput(ReadsRequest, bentoml.IODescriptor):
    """/read_number's image: as /predict's, multipart field `image` or the raw body."""

    image: ImageFile = Field(description="the image of a number: PNG, JPEG, BMP, GIF, WebP or TIFF")

    @classmethod
    async def read(cls, request: Request) -> NumberInput:
        """-> image=the upload's upright pixels, or image=BadInput."""
        spec: NumberInput = cls.model_construct(image=await read_upload(request))
        return spec


class ImagesInput(ReadsRequest, bentoml.IODescriptor):
    """Many images: the multipart field `images`, repeated."""

    images: list[ImageFile] = Field(description="the images, answered in the same order")

    @classmethod
    async def read(cls, request: Request) -> ImagesInput:
        """-> images=(N, 28, 28) float32 frames, or images=BadInput."""
        spec: ImagesInput = cls.model_construct(images=await read_request(request, many=True))
        return spec


class PixelsInput(ReadsRequest, PixelsRequest, bentoml.IODescriptor):
    """JSON {"images": [28x28 arrays]}, validated by pydantic; errors become BadInput."""

    @classmethod
    async def read(cls, request: Request) -> PixelsInput:
        """-> images=(N, 28, 28) float32 frames, or images=BadInput. Bodies of more than a
        few images are parsed in a decode thread: 17 MiB of JSON takes seconds."""
        settings = get_settings()
        limit = settings.max_images_per_request
        accepted = ACCEPTED_PIXELS.format(max_images=limit)
        try:
            async with HeldBody(request, settings, accepted) as body:
                value: Frames = await parse_off_loop(parse_pixels, body, limit, accepted, accepted=accepted)
        except BadInput as exc:
            value = exc
        return cls.model_construct(images=value)


class PredictionOutput(WritesResponse, Prediction, bentoml.IODescriptor):
    """/predict's answer: one Prediction (as JSON bytes from prediction_answers), or the
    request's refusal."""

    @classmethod
    def respond(cls, obj: Any) -> Response:
        (item,) = obj  # the batch is split back per request: a list of one
        return answer_response(item, "application/json")


class PredictionsOutput(WritesResponse, IORootModel[list[Prediction]]):
    """A list of Predictions (JSON bytes from predictions_json), or the request's refusal."""

    @classmethod
    def respond(cls, obj: Any) -> Response:
        return answer_response(obj, "application/json")


class NumberOutput(WritesResponse, NumberRead, bentoml.IODescriptor):
    """/read_number's answer: a NumberRead (JSON bytes from answers.number_json), or the refusal."""

    @classmethod
    def respond(cls, obj: Any) -> Response:
        return answer_response(obj, "application/json")


class PngOutput(WritesResponse, IORootModel[bytes]):
    """/preprocess's answer: the 28x28 frame as a PNG, or the request's refusal."""

    media_type: ClassVar[str | None] = "image/png"

    @classmethod
    def respond(cls, obj: Any) -> Response:
        return answer_response(obj, "image/png")


def answer_response(answer: Answer, media_type: str) -> Response:
    """An answer's bytes, or its refusal as our JSON."""
    if isinstance(answer, BadInput):
        return error_response(answer)
    return Response(answer, media_type=media_type)
