"""/docs.json: BentoML's generated OpenAPI, completed with what the image endpoints really take
and answer.

BentoML documents each API by its input and output specs, which for ours (they parse the
request themselves) says too little: no raw-body /predict, pixel floats up to 255, no list
bounds, and 400/404/500 in BentoML's error shape while we answer 400, 413, 415, 422, 503 and
504 in ours. The routes listed in ROUTES are rewritten here from the settings in force; any
other route keeps BentoML's description; service/pages.py's GET routes are added. Served
from a Starlette app mounted in front of BentoML's own /docs.json.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.answers import NumberRead, Prediction
from service.errors import IMAGE_FORMATS
from service.server.security import open_paths
from service.settings import Settings, get_settings
from service.transport.pixels import PIXEL_IMAGE_SCHEMA
from service.v2 import openapi as v2_openapi

REF = "#/components/schemas/{}"
BINARY = {"type": "string", "format": "binary"}
ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "description": "every refusal: what was wrong, and what would be accepted instead",
    "required": ["error", "accepted"],
    "properties": {"error": {"type": "string"}, "accepted": {"type": "string"}},
    "additionalProperties": False,
}
WHY = {
    401: "no known API key (MNIST_API_KEYS is set)",
    400: "malformed request: empty body, not an image, truncated, wrong field, bad JSON",
    413: "over a limit: body bytes, images per request, pixels per image or per request",
    415: "unsupported Content-Type or image format",
    422: "an image with no ink to read, or pixel arrays of the wrong shape, type or range",
    503: "this worker is busy (decode queue full, or batching behind): retry after Retry-After",
    504: "not answered within MNIST_TIMEOUT_S",
}
# /predict's 422 also refuses non-digits when asked to; batch endpoints only flag them (is_digit).
WHY_NUMBER_422 = "an image with no ink to read, or more digits than one number may have (the message says the limit)"
WHY_PREDICT_422 = (
    WHY[422] + "; with MNIST_REJECT_NON_DIGITS on and a model with a digit detector, an image that "
    "does not look like one handwritten digit (digit score under the threshold in force)"
)
# The image endpoints, with the statuses each can answer besides 200.
ROUTES = {
    "/predict": (400, 413, 415, 422, 503, 504),
    "/preprocess": (400, 413, 415, 422, 503, 504),
    "/predict_batch": (400, 413, 415, 422, 503, 504),
    "/predict_pixels": (400, 413, 422, 503, 504),
    "/read_number": (400, 413, 415, 422, 503, 504),
}
# The GET routes of service/pages.py, which BentoML does not see (a mounted Starlette app).
PAGES = {
    "/model": {
        "get": {
            "description": "the served model's metadata.json, plus its provider and threads",
            "responses": {
                "200": {
                    "description": "the metadata",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["version", "sha256", "runtime"],
                                "properties": {
                                    "digit_detector": {
                                        "type": "object",
                                        "description": "the model's digit detector as fitted (absent: none)",
                                        "required": ["output", "threshold"],
                                    },
                                    "runtime": {
                                        "type": "object",
                                        "required": ["provider", "intra_op_threads", "digit_threshold"],
                                        "properties": {
                                            "digit_threshold": {
                                                "type": "number",
                                                "nullable": True,
                                                "description": "the digit threshold in force "
                                                "(MNIST_DIGIT_THRESHOLD, else the detector's); null: no detector",
                                            },
                                            "reject_non_digits": {"type": "boolean"},
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "503": {
                    "description": "the model is not loaded yet",
                    "content": {"application/json": {"schema": {"$ref": REF.format("Error")}}},
                },
            },
        }
    },
    "/ui": {
        "get": {
            "description": "the draw-a-digit page",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
}
RAW_IMAGE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/bmp",
    "image/gif",
    "image/webp",
    "image/tiff",
    "application/octet-stream",
)


def complete(spec: dict[str, Any], settings: Settings, versions: Sequence[str]) -> dict[str, Any]:
    """BentoML's spec (as a dict) with every route described as it behaves: the image endpoints'
    bodies and refusals, the GET pages, the Open Inference Protocol's routes (`versions`: the
    addressable model versions: v2_openapi.addressable_versions) and, with
    MNIST_API_KEYS set, the key every guarded route asks for."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["Prediction"] = nullable_3_0(Prediction.model_json_schema())
    schemas.update(_number_schemas())
    paths = spec.setdefault("paths", {})
    paths.update(copy.deepcopy(PAGES))
    bodies, answers = _image_bodies(settings.max_images_per_request), _image_answers()
    for path, statuses in ROUTES.items():
        post = paths.get(path, {}).get("post")
        if post is not None:
            _describe_image_route(post, path, statuses, bodies[path], answers[path])
    v2_openapi.describe(paths, schemas, versions)
    keys = getattr(settings, "api_keys", None)  # service/server/security.py: MNIST_API_KEYS
    if keys and keys.get_secret_value():
        _guard(spec, open_paths(settings))
    return spec


def _number_schemas() -> dict[str, Any]:
    """NumberRead and DigitRead, as OpenAPI 3.0 components (pydantic's $defs moved up)."""
    schema = NumberRead.model_json_schema(ref_template=REF.replace("{}", "{model}"))
    digit = schema.pop("$defs")["DigitRead"]
    return {"NumberRead": nullable_3_0(schema), "DigitRead": nullable_3_0(digit)}


def _one_image() -> dict[str, Any]:
    """/predict's and /preprocess's bodies: a multipart field, or the file as the raw body."""
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {**BINARY, "description": _formats()}},
            }
        },
        **{kind: {"schema": {**BINARY, "description": _formats()}} for kind in RAW_IMAGE_TYPES},
    }


def _image_bodies(limit: int) -> dict[str, dict[str, Any]]:
    """Each image route's request body, with the settings' limit on images per request."""
    many = {"type": "array", "minItems": 1, "maxItems": limit}
    return {
        "/predict": _one_image(),
        "/preprocess": _one_image(),
        "/read_number": _one_image(),
        "/predict_batch": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {**many, "items": BINARY, "description": f"{_formats()}; answered in the same order"}
                    },
                }
            }
        },
        "/predict_pixels": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {"images": {**many, "items": PIXEL_IMAGE_SCHEMA}},
                    "additionalProperties": False,
                }
            }
        },
    }


def _image_answers() -> dict[str, dict[str, Any]]:
    """Each image route's 200 content."""
    predictions = {"type": "array", "items": {"$ref": REF.format("Prediction")}}
    return {
        "/predict": {"application/json": {"schema": {"$ref": REF.format("Prediction")}}},
        "/preprocess": {"image/png": {"schema": BINARY}},
        "/predict_batch": {"application/json": {"schema": predictions}},
        "/predict_pixels": {"application/json": {"schema": predictions}},
        "/read_number": {"application/json": {"schema": {"$ref": REF.format("NumberRead")}}},
    }


def _describe_image_route(
    post: dict[str, Any], path: str, statuses: tuple[int, ...], body: dict[str, Any], answer: dict[str, Any]
) -> None:
    """One image route's body, answer and refusals, in place of BentoML's description."""
    post["requestBody"] = {"required": True, "content": body}
    post["responses"] = {
        "200": {"description": "the answer", "content": answer},
        **{str(status): _error(status, path) for status in statuses},
    }
    if path == "/preprocess":
        post["parameters"] = [SHOW_PARAMETER]


def _guard(spec: dict[str, Any], open_paths: Sequence[str]) -> None:
    """Every operation outside `open_paths` (and what lies under them) asks for a key and may answer 401."""
    spec["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path, operations in spec["paths"].items():
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in open_paths):
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            operation.setdefault("responses", {})["401"] = _error(401)


SHOW_PARAMETER = {
    "name": "show",
    "in": "query",
    "required": False,
    "description": "frame (default): the 28x28 image the model sees; region: the upload (at most 384 px) "
    "with the writing surface the frame was found on outlined in green and the digit's box in red",
    "schema": {"type": "string", "enum": ["frame", "region"], "default": "frame"},
}


def nullable_3_0(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic writes `X | None` as JSON Schema's anyOf [X, {"type": "null"}]; BentoML's document
    is OpenAPI 3.0, which has no null type and says X with `nullable: true` instead."""
    properties = {}
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf", [])
        if len(options) == 2 and {"type": "null"} in options:
            (other,) = [o for o in options if o != {"type": "null"}]
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **other, "nullable": True}
        properties[name] = prop
    return {**schema, "properties": properties}


def _formats() -> str:
    return "an image file: " + ", ".join(IMAGE_FORMATS)


def _error(status: int, path: str = "") -> dict[str, Any]:
    """One refusal status, in our JSON (a 503 also says when to retry)."""
    response: dict[str, Any] = {
        "description": {("/predict", 422): WHY_PREDICT_422, ("/read_number", 422): WHY_NUMBER_422}.get(
            (path, status), WHY[status]
        ),
        "content": {"application/json": {"schema": {"$ref": REF.format("Error")}}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
    return response


def build_app(service: Callable[[], Any], versions: Sequence[str]) -> Starlette:
    """GET /docs.json for `service()` (the BentoML service, looked up when first asked) and the
    model versions v2 paths may name (v2_openapi.addressable_versions)."""

    @functools.cache
    def spec() -> dict[str, Any]:
        return complete(service().openapi_spec.asdict(), get_settings(), versions)

    async def docs(_: Request) -> Response:
        """The completed OpenAPI document."""
        return JSONResponse(spec())

    return Starlette(routes=[Route("/docs.json", docs, methods=["GET"])])
