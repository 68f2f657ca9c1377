"""Bad input is the caller's error: a 4xx with JSON saying what was wrong and what is accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.responses import Response

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")

ACCEPTED_IMAGE = (
    "one image (PNG, JPEG, BMP, GIF, WebP or TIFF) as multipart field 'image', "
    "or as the raw request body with an image/* Content-Type"
)
ACCEPTED_IMAGES = (
    "images (PNG, JPEG, BMP, GIF, WebP or TIFF) as repeated multipart field 'images', at most {max_images} per request"
)
ACCEPTED_PIXELS = (
    'JSON {{"images": [...]}}: 1 to {max_images} arrays of 28x28 numbers, '
    "either integers 0-255 or floats 0.0-1.0, white digit on black"
)


@dataclass
class BadInput(Exception):
    """A request we refuse: HTTP status, what was wrong, and what we would accept instead.

    Mostly the caller's error (4xx); also the few refusals that are ours to explain in the
    same shape: busy (503, with a Retry-After) and too slow (504).
    """

    error: str
    accepted: str
    status: int = 400

    def __str__(self) -> str:
        return self.error

    def body(self) -> dict[str, str]:
        """The JSON body every 4xx of this service carries."""
        return {"error": self.error, "accepted": self.accepted}

    def to_json(self) -> bytes:
        return json.dumps(self.body()).encode()

    def at(self, index: int) -> BadInput:
        """The same refusal, naming the image's position in a batch: images[index]."""
        return BadInput(f"images[{index}]: {self.error}", self.accepted, self.status)


ACCEPTED_DIGIT = (
    "an image of one handwritten digit 0-9 (this server refuses other images: MNIST_REJECT_NON_DIGITS "
    "is on; /predict_batch and /predict_pixels flag them with is_digit=false instead)"
)

ACCEPTED_NUMBER = (
    "one image (PNG, JPEG, BMP, GIF, WebP or TIFF) of a handwritten number of at most {max_digits} digits "
    "in one row, as multipart field 'image', or as the raw request body with an image/* Content-Type"
)

RETRY_AFTER_S = 1  # a busy worker's advice: bursts of heavy uploads clear within seconds


def overloaded(accepted: str) -> BadInput:
    """503: this worker's decode threads and their queue are full, or batching fell behind."""
    return BadInput(f"the server is busy; retry after {RETRY_AFTER_S} s", accepted, 503)


def timed_out(accepted: str) -> BadInput:
    """504: the request was not answered within MNIST_TIMEOUT_S."""
    return BadInput("the request was not answered in time (MNIST_TIMEOUT_S)", accepted, 504)


def too_large(what: str, limit: int, accepted: str) -> BadInput:
    """413 for a body or an image over a configured byte limit."""
    return BadInput(f"{what} is larger than the {limit:,} byte limit", accepted, 413)


def not_a_digit(score: float, threshold: float) -> BadInput:
    """422 for an image the digit detector flags, when MNIST_REJECT_NON_DIGITS is on."""
    # enough decimals that a score just under the threshold does not print as equal to it
    places = next((p for p in range(2, 7) if f"{score:.{p}f}" != f"{threshold:.{p}f}"), 6)
    return BadInput(
        f"the image does not look like one handwritten digit "
        f"(digit score {score:.{places}f}, threshold {threshold:.{places}f})",
        ACCEPTED_DIGIT,
        422,
    )


def error_response(exc: BadInput) -> Response:
    """Our refusal as HTTP: {"error": ..., "accepted": ...}, with a Retry-After when we are busy.
    The one renderer: the output specs, v2's routes and server.traffic all answer with it."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return Response(exc.to_json(), status_code=exc.status, media_type="application/json", headers=headers)
