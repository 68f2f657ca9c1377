"""/predict_pixels' body: what it accepts (28x28 arrays as JSON) and how it is read (a
streaming parse, image by image, that stops at the request's image limit)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from service.errors import BadInput
from service.images.frames import INLINE_BYTES


def _image_of(item: dict[str, Any], what: str) -> dict[str, Any]:
    """28 rows of 28 `item`s."""
    row = {"type": "array", "items": item, "minItems": 28, "maxItems": 28}
    return {"type": "array", "items": row, "minItems": 28, "maxItems": 28, "description": what}


# One image as JSON: all integers 0-255, or numbers 0.0-1.0 (an image of only 0s and 1s is
# read as integers). White digit on black.
PIXEL_IMAGE_SCHEMA = {
    "anyOf": [
        _image_of({"type": "integer", "minimum": 0, "maximum": 255}, "integers 0-255"),
        _image_of({"type": "number", "minimum": 0, "maximum": 1}, "numbers 0.0-1.0"),
    ],
    "description": "28 rows of 28 numbers, white digit on black",
}


def pixels_to_array(value: Any, *, look_for_bools: bool = True) -> np.ndarray:
    """One 28x28 image from JSON: ints read as 0-255, floats as 0.0-1.0 -> float32 in [0, 1].

    look_for_bools: numpy reads true as 1 beside numbers; skip the walk when the body holds
    no JSON true or false at all.
    """
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged rows
        raise ValueError("rows of different lengths: expected 28 rows of 28 numbers") from None
    if arr.shape != (28, 28):
        raise ValueError(f"shape {list(arr.shape)}, expected [28, 28]")
    if look_for_bools and any(type(v) is bool for row in value for v in row):
        raise ValueError("values must be numbers, got bool values")
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ValueError(f"values must be numbers, got {arr.dtype.name} values")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError("values must be finite numbers, not NaN or infinity")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ValueError(
                f"float values must lie in [0.0, 1.0], got {arr.min():g}..{arr.max():g} (send integers for 0-255)"
            )
        return arr.astype(np.float32)
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"integer values must lie in [0, 255], got {arr.min()}..{arr.max()}")
    return arr.astype(np.float32) / 255.0


class PixelsRequest(BaseModel):
    """Programmatic clients that already hold pixels: {"images": [28x28 arrays]}."""

    # Only "images": a body's other keys are refused, unparsed (load_json).
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    images: Annotated[
        list[Any],
        WithJsonSchema({"type": "array", "items": PIXEL_IMAGE_SCHEMA, "minItems": 1}),
    ] = Field(min_length=1, description="one or more 28x28 images")

    @field_validator("images", mode="after")
    @classmethod
    def _to_arrays(cls, images: list[Any], info: ValidationInfo) -> list[Any]:
        """Every image must be 28x28 numbers in range; floats must be finite."""
        bools = (info.context or {}).get("look_for_bools", True)
        return [_checked(i, image, bools) for i, image in enumerate(images)]

    def stack(self) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1]."""
        return np.stack(self.images)


def _checked(index: int, image: Any, look_for_bools: bool) -> np.ndarray:
    try:
        return pixels_to_array(image, look_for_bools=look_for_bools)
    except ValueError as exc:
        raise ValueError(f"images[{index}]: {exc}") from None


def parse_pixels(body: bytes, limit: int, accepted: str) -> np.ndarray:
    """Validate a /predict_pixels body into (N, 28, 28) float32 in [0, 1]."""
    if not body.strip():
        raise BadInput("the request body is empty", accepted)
    try:
        payload = load_json(body, limit, accepted)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON ({exc})", accepted) from None
    except RecursionError:  # [[[[...]]]] a thousand deep: Python's parser recurses
        raise BadInput("the JSON is nested too deeply", accepted) from None
    try:
        bools = b"true" in body or b"false" in body
        return PixelsRequest.model_validate(payload, context={"look_for_bools": bools}).stack()
    except ValidationError as exc:
        raise BadInput(validation_message(exc), accepted, 422) from None


IMAGES_START = re.compile(r'\s*\{\s*"images"\s*:\s*\[\s*')
WHITESPACE = re.compile(r"\s*")


def _skip_space(text: str, pos: int) -> int:
    """The position after any whitespace at `pos` (the pattern matches the empty string too)."""
    match = WHITESPACE.match(text, pos)
    return match.end() if match else pos


def load_json(body: bytes, limit: int, accepted: str) -> Any:
    """json.loads for a /predict_pixels body, one image at a time.

    Why: json.loads holds the GIL for the whole body (17 MiB: about a second), which stalls
    the event loop even from a decode thread; parsed image by image, the loop runs between
    images, and the parse stops (413) as soon as the list passes `limit`. A body of any other
    shape is parsed whole only when small: {"images": [...]} is the only key we take.
    """
    text = body.decode()
    start = IMAGES_START.match(text)
    if start is None:
        if len(body) > INLINE_BYTES:
            raise BadInput('the body must be a JSON object {"images": [...]} and nothing else', accepted, 422)
        return json.loads(text)
    decoder, images, pos = json.JSONDecoder(), [], start.end()
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            image, pos = decoder.raw_decode(text, pos)
            images.append(image)
            if len(images) > limit:
                raise BadInput(f"more than {limit} images in one request: the limit is {limit}", accepted, 413)
            pos = _skip_space(text, pos)
            if text.startswith(",", pos):
                pos = _skip_space(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise ValueError(f"expected ',' or ']' at char {pos}")
    rest = text[pos:].strip()
    if rest == "}":
        return {"images": images}
    if not rest.startswith(","):
        raise ValueError(f"expected '}}' at char {pos}")
    if len(rest) <= INLINE_BYTES:  # other keys: first, is it JSON at all?
        json.loads("{" + rest[1:])
    raise BadInput('the body must be a JSON object {"images": [...]} and nothing else', accepted, 422)


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
