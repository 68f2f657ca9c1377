"""The published contract holds: schemathesis against a started service's /docs.json finds no
server error and no status, content-type, header or schema non-conformance."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.server import running_service

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Small limits keep generated lists short; 100 examples per operation and phase keep the run
# to under a minute on two shared cores.
ENV = {"MNIST_WORKERS": "1", "MNIST_MAX_IMAGES_PER_REQUEST": "4"}
EXAMPLES = 100
IMAGE_ROUTES = ("/predict", "/predict_batch", "/predict_pixels", "/preprocess")


def test_docs_json_documents_every_status_of_the_image_routes() -> None:
    from service.openapi import complete
    from service.settings import Settings

    spec = complete({"paths": {path: {"post": {}} for path in IMAGE_ROUTES}}, Settings())
    for path in IMAGE_ROUTES:
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "400", "413", "422", "503", "504"} <= set(responses), path
        assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["503"]["headers"]
    raw = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "application/octet-stream"} <= set(raw)
    pixels = spec["paths"]["/predict_pixels"]["post"]["requestBody"]["content"]
    images = pixels["application/json"]["schema"]["properties"]["images"]
    assert images["minItems"] == 1 and images["maxItems"] == Settings().max_images_per_request
    floats = images["items"]["anyOf"][1]["items"]["items"]
    assert floats == {"type": "number", "minimum": 0, "maximum": 1}
    assert {"/model", "/ui"} <= set(spec["paths"])
    assert "401" not in responses


def test_with_api_keys_every_image_route_documents_its_401() -> None:
    from service.openapi import complete
    from service.settings import Settings

    settings = Settings(api_keys="k1")
    spec = complete({"paths": {path: {"post": {}} for path in IMAGE_ROUTES}}, settings)
    for path in IMAGE_ROUTES:
        post = spec["paths"][path]["post"]
        assert "401" in post["responses"] and post["security"]


@pytest.mark.parametrize("model", ["served", "detector"])
def test_schemathesis_finds_no_failures(tmp_path: Path, model: str, request: pytest.FixtureRequest) -> None:
    """The repo's served model; and the tiny digit-detector model with MNIST_REJECT_NON_DIGITS on
    (is_digit and digit_score filled in, /predict's 422 for non-digits; tests/conftest.py)."""
    env = ENV
    if model == "detector":
        models = request.getfixturevalue("detector_models")
        env = {**ENV, "MNIST_MODELS_DIR": str(models), "MNIST_REJECT_NON_DIGITS": "true"}
    with running_service(env=env) as url:
        paths = httpx.get(f"{url}/docs.json").json()["paths"]
        assert set(IMAGE_ROUTES) <= set(paths)
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
            # Open Inference Protocol routes are service/v2.py's to describe and test.
            "--exclude-path-regex",
            "^/v2/",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = run.stdout + run.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    summary = out[out.rfind("SUMMARY") :]
    print(summary)
    assert run.returncode == 0, out[-6000:]
    assert "failures" not in summary.lower().replace("0 failures", ""), summary
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested.group(1)) >= len(IMAGE_ROUTES) + 2, summary
