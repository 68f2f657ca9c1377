"""/docs.json without a server: the completed document's paths are OpenAPI paths, v2 included,
and API keys put their 401 on exactly the guarded routes (a served check is in
tests/reliability/test_openapi_contract.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.openapi import complete
from service.settings import Settings
from service.v2.openapi import openapi_3_0
from service.v2.protocol import INFER_ROUTE

pytestmark = pytest.mark.unit

# What BentoML's spec holds for our APIs: the image routes and v2 infer under its Starlette pattern.
BENTOML = {"paths": {p: {"post": {"operationId": p}} for p in ("/predict", "/preprocess", INFER_ROUTE)}}
VERSIONS = ["mnist-cnn-aaaaaaaa", "mnist-cnn-bbbbbbbb"]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def test_every_path_parameter_is_declared_and_enumerated() -> None:
    spec = complete(BENTOML, Settings(), VERSIONS)
    assert INFER_ROUTE not in spec["paths"]
    assert {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"} <= set(spec["paths"])
    for method, path, operation in _operations(spec):
        named = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
        assert named == set(declared), (method, path)
        assert all(p["required"] and p["schema"]["enum"] for p in declared.values()), (method, path)
    version = spec["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]["parameters"][1]
    assert version["schema"]["enum"] == VERSIONS


def test_every_schema_reference_resolves() -> None:
    spec = complete(BENTOML, Settings(), VERSIONS)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(spec).replace("'", '"')))
    assert refs and refs <= set(spec["components"]["schemas"])


def test_api_keys_guard_every_route_but_the_open_ones() -> None:
    spec = complete(BENTOML, Settings(api_keys="k1"), VERSIONS)
    for method, path, operation in _operations(spec):
        open_path = path.startswith("/v2/health/")
        assert ("401" in operation["responses"]) != open_path, (method, path)
        assert bool(operation.get("security")) != open_path, (method, path)
    unguarded = complete(BENTOML, Settings(), VERSIONS)
    assert not any("401" in op["responses"] or "security" in op for _, _, op in _operations(unguarded))


def test_pydantic_nulls_become_openapi_3_0_nullable() -> None:
    schema = {
        "properties": {
            "id": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "outputs": {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]},
            "data": {"default": None},
        }
    }
    converted = openapi_3_0(schema)["properties"]
    assert converted["id"] == {"type": "string", "nullable": True, "default": None}
    assert converted["outputs"] == {"allOf": [{"$ref": "#/components/schemas/X"}], "nullable": True}
    assert converted["data"] == {"default": None, "nullable": True}
