"""/docs.json's Open Inference Protocol routes (service/v2/protocol.py serves them).

BentoML documents only the infer API, under its Starlette route `/v2/models/{model:path}/infer`,
which is not an OpenAPI path: `{model:path}` names no declared parameter and matches slashes.
Here it becomes the protocol's two paths, `/v2/models/{name}/infer` and
`/v2/models/{name}/versions/{version}/infer`, each parameter declared, with `name` and `version`
enumerated (any other answers 404), beside the GET routes the mounted pages app serves.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path
from typing import Any

from contract import ModelFiles
from service.v2.protocol import INFER_ROUTE, MODEL_NAME
from service.v2.schemas import InferRequest, InferResponse, ModelMetadata, ServerMetadata

REF = "#/components/schemas/{}"
JSON_ERROR = {"application/json": {"schema": {"$ref": REF.format("Error")}}}
WHY = {
    400: "not an infer request this model takes: malformed JSON or binary header, unknown input "
    "or output, datatype, shape or data that do not agree",
    404: "no such model or version (a path no route matches, e.g. one with a line break in a name, gets the "
    "server's plain-text 404)",
    413: "over a limit: body bytes, images per request, pixels per image or per request",
    415: "a Content-Encoding, or an image format, that is not supported",
    422: "an image with no ink to read",
    503: "the model is not loaded yet, or this worker is busy: retry after Retry-After",
    504: "not answered within MNIST_TIMEOUT_S",
}
INFER_STATUSES = (400, 404, 413, 415, 422, 503, 504)


def addressable_versions(models_dir: Path, served: str, named: Sequence[str]) -> list[str]:
    """The versions a v2 path may name: the served one first, then those of served.json's
    (`named`, as the service read it at start-up) that are on disk."""
    on_disk = [version for version in named if all(f.is_file() for f in astuple(ModelFiles.of(models_dir / version)))]
    return list(dict.fromkeys([served, *on_disk]))


def describe(paths: dict[str, Any], schemas: dict[str, Any], versions: Sequence[str]) -> None:
    """Replace BentoML's infer path with the protocol's routes, and add the protocol's schemas."""
    for model in (InferRequest, InferResponse, ModelMetadata, ServerMetadata):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = openapi_3_0(definition)
        schemas[model.__name__] = openapi_3_0(schema)
    # What the model accepts, which the protocol's own schema leaves open.
    schemas["RequestInput"]["properties"]["datatype"]["enum"] = ["FP32", "BYTES"]
    bentoml_infer = paths.pop(INFER_ROUTE, {}).get("post", {})
    name = _parameter("name", [MODEL_NAME], "the model's name")
    version = _parameter("version", list(versions), "a model version (models/ folder name); default: the served one")
    paths["/v2"] = {"get": _get("server metadata", REF.format("ServerMetadata"))}
    paths["/v2/health/live"] = {"get": _get("the process answers", None)}
    paths["/v2/health/ready"] = {"get": _get("every version is loaded", None, 503)}
    for prefix, parameters in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        paths[prefix] = {"get": _get("model metadata", REF.format("ModelMetadata"), 404, 503, parameters=parameters)}
        paths[f"{prefix}/ready"] = {"get": _get("the model is loaded", None, 404, 503, parameters=parameters)}
        paths[f"{prefix}/infer"] = {"post": _infer(bentoml_infer, parameters)}


def _parameter(name: str, values: list[str], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "enum": values},
    }


def _get(
    what: str, schema_ref: str | None, *statuses: int, parameters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A GET route of the protocol: 200 with `schema_ref` (or a small JSON object), and its refusals."""
    schema = {"$ref": schema_ref} if schema_ref else {"type": "object"}
    operation: dict[str, Any] = {
        "tags": ["Open Inference Protocol"],
        "description": what,
        "responses": {
            "200": {"description": what, "content": {"application/json": {"schema": schema}}},
            **{str(s): _refusal(s) for s in statuses if s != 503},
            **(
                {"503": {"description": WHY[503], "content": {"application/json": {"schema": {"type": "object"}}}}}
                if 503 in statuses
                else {}
            ),
        },
    }
    if parameters:
        operation["parameters"] = copy.deepcopy(parameters)
    return operation


def _infer(bentoml_infer: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """POST .../infer: the protocol's JSON request, or its binary tensor data extension."""
    operation = {k: v for k, v in bentoml_infer.items() if k not in ("requestBody", "responses", "operationId")}
    operation["tags"] = ["Open Inference Protocol"]
    operation["parameters"] = copy.deepcopy(parameters)
    operation["requestBody"] = {
        "required": True,
        "description": "FP32 pixels (N, 1, 28, 28) in [0, 1] or BYTES image files [N]; the binary tensor data "
        "extension (application/octet-stream with Inference-Header-Content-Length) is read too (docs/v2.md)",
        "content": {"application/json": {"schema": {"$ref": REF.format("InferRequest")}}},
    }
    operation["responses"] = {
        "200": {
            "description": "the outputs asked for (all by default); binary when an output asks for binary_data",
            "content": {
                "application/json": {"schema": {"$ref": REF.format("InferResponse")}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **{str(status): _refusal(status) for status in INFER_STATUSES},
    }
    return operation


def _refusal(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": WHY[status], "content": copy.deepcopy(JSON_ERROR)}
    if status == 404:
        response["content"]["text/plain"] = {"schema": {"type": "string"}}
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
    return response


def openapi_3_0(schema: Any) -> Any:
    """pydantic's JSON Schema in OpenAPI 3.0's dialect, all the way down: `X | None` (anyOf X and
    null) becomes X with `nullable: true`; a bare `$ref` beside other keys goes into allOf."""
    if isinstance(schema, list):
        return [openapi_3_0(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: openapi_3_0(v) for k, v in schema.items()}
    options = schema.get("anyOf", [])
    if len(options) == 2 and {"type": "null"} in options:
        (other,) = [o for o in options if o != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if "$ref" in other:
            other = {"allOf": [other]}
        schema = {**rest, **other, "nullable": True}
    if schema.get("default", 0) is None and not schema.get("nullable"):
        schema["nullable"] = True
    return schema
