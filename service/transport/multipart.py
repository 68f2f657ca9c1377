"""The image files of a request body: multipart parts named image/images, or the raw body."""

from __future__ import annotations

from multipart import (
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)
from starlette.requests import Request

from service.errors import ACCEPTED_IMAGE, ACCEPTED_IMAGES, BadInput
from service.settings import Settings
from service.transport.body import media_type, parse_off_loop

RAW_TYPES = ("application/octet-stream",)


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


def accepted_uploads(settings: Settings, *, many: bool) -> str:
    """What an image endpoint accepts: one image, or many up to this server's limit."""
    return accepted_images(settings) if many else ACCEPTED_IMAGE


async def upload_bytes(request: Request, body: bytes, settings: Settings, *, many: bool) -> list[bytes]:
    """Image bytes from multipart field image/images, or (single only) the raw body.
    20 MiB of parts take the event loop 40 ms to split: large bodies split in a decode thread."""
    accepted = accepted_uploads(settings, many=many)
    kind = media_type(request)
    if kind == "multipart/form-data":
        max_files = settings.max_images_per_request if many else 1
        field = "images" if many else "image"
        content_type = request.headers["content-type"]
        return await parse_off_loop(multipart_files, body, content_type, field, max_files, accepted, accepted=accepted)
    if not many and (kind.startswith("image/") or kind in RAW_TYPES):
        return [body]
    if not body:
        raise BadInput("the request body is empty", accepted)
    sent = kind or "no Content-Type"
    raise BadInput(f"unsupported request content type ({sent})", accepted, 415)
