"""The published contract holds: /docs.json documents every route the service answers, each
documented operation answers as documented, and schemathesis against it finds no server error
and no status, content-type, header or schema non-conformance, the v2 routes included."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.server import running_service

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.server]

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Small limits keep generated lists short; 100 examples per operation and phase keep the run
# to a few minutes on two shared cores.
ENV = {"MNIST_WORKERS": "1", "MNIST_MAX_IMAGES_PER_REQUEST": "4"}
EXAMPLES = 100
# Starlette routes that answer as another documented path does.
ALIASES = {"/ui/": "/ui"}
# BentoML's infer route (a Starlette pattern) is documented as the protocol's two paths.
INFER_PATHS = {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"}
OPERATIONS = ("get", "post", "put", "delete", "patch")


def _routes() -> set[tuple[str, str]]:
    """(method, path) of every route the service serves: its BentoML APIs, and the mounted pages
    app's routes. Read in a child process: importing service.service installs its hand-offs."""
    probe = (
        "import json, service.service as s, service.pages as p\n"
        "from starlette.routing import Route\n"
        "routes = [('post', a.route) for a in s.MnistService.apis.values()]\n"
        "routes += [(m.lower(), r.path) for r in p.build_app().routes if isinstance(r, Route) "
        "for m in r.methods if m != 'HEAD']\n"
        "print(json.dumps(routes))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return {(method, path) for method, path in json.loads(done.stdout.strip().splitlines()[-1])}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_service(env=ENV) as url:
        yield url


@pytest.fixture(scope="module")
def docs(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/docs.json", timeout=30).json()


def _operations(docs: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in docs["paths"].items():
        for method, operation in item.items():
            if method in OPERATIONS:
                yield method, path, operation


def _concrete(path: str, operation: dict[str, Any]) -> str:
    """`path` with each path parameter set to its first allowed value."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", parameter["schema"]["enum"][0])
    return path


def test_every_route_is_documented_with_valid_path_parameters(docs: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in _operations(docs)}
    for method, path in _routes():
        if ":" in path:  # a Starlette converter: not an OpenAPI path
            assert {(method, p) for p in INFER_PATHS} <= documented, path
            continue
        assert (method, ALIASES.get(path, path)) in documented, f"{method.upper()} {path} is not in /docs.json"
    for method, path, operation in _operations(docs):
        named = set(re.findall(r"{([^}]+)}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert named == declared, f"{method.upper()} {path}: path parameters {named}, declared {declared}"
        assert all(":" not in name for name in named), path
    assert "securitySchemes" not in docs.get("components", {})  # no keys, nothing asks for one


def test_every_documented_operation_answers_a_documented_status(url: str, docs: dict[str, Any]) -> None:
    """An empty request to each operation: answered (never 404 or 405, never a 5xx but a
    documented 503), with a documented status, refusals in our JSON."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for method, path, operation in _operations(docs):
            answer = http.request(method.upper(), _concrete(path, operation))
            where = f"{method.upper()} {path}: {answer.status_code} {answer.text[:200]}"
            assert answer.status_code not in (404, 405) and answer.status_code < 500, where
            assert str(answer.status_code) in operation["responses"], where
            documented = operation["responses"][str(answer.status_code)].get("content", {})
            if documented.get("application/json", {}).get("schema") == {"$ref": "#/components/schemas/Error"}:
                assert set(answer.json()) == {"error", "accepted"}, where


def test_with_api_keys_every_guarded_operation_documents_its_401() -> None:
    """With MNIST_API_KEYS set, an operation either answers without a key or documents the 401
    it answers and the key it asks for."""
    with running_service(env={**ENV, "MNIST_API_KEYS": "k1"}) as url, httpx.Client(base_url=url, timeout=60) as http:
        docs = http.get("/docs.json", headers={"x-api-key": "k1"}).json()
        guarded = 0
        for method, path, operation in _operations(docs):
            answer = http.request(method.upper(), _concrete(path, operation))
            if answer.status_code == 401:
                guarded += 1
                assert "401" in operation["responses"] and operation.get("security"), f"{method.upper()} {path}"
            else:
                assert "security" not in operation, f"{method.upper()} {path} asks for a key it does not need"
    assert guarded >= 4 + 6  # the image routes, /model, /ui and the v2 model routes at least


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("model", ["served", "detector"])
def test_schemathesis_finds_no_failures(tmp_path: Path, model: str, request: pytest.FixtureRequest) -> None:
    """The repo's served model; and the tiny digit-detector model with MNIST_REJECT_NON_DIGITS on
    (is_digit and digit_score filled in, /predict's 422 for non-digits; tests/conftest.py)."""
    env = ENV
    if model == "detector":
        models = request.getfixturevalue("detector_models")
        env = {**ENV, "MNIST_MODELS_DIR": str(models), "MNIST_REJECT_NON_DIGITS": "true"}
    with running_service(env=env) as url:
        operations = list(_operations(httpx.get(f"{url}/docs.json").json()))
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/docs.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "11",
            "--no-color",
            "--request-timeout",
            "60",
            "--phases",
            "examples,coverage,fuzzing",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    out = run.stdout + run.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    summary = out[out.rfind("SUMMARY") :]
    print(summary)
    assert run.returncode == 0, out[-6000:]
    assert "failures" not in summary.lower().replace("0 failures", ""), summary
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested.group(1)) == len(operations), summary
