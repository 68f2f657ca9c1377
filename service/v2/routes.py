"""The Open Inference Protocol's GET routes: server and model metadata, health, readiness.

Plain Starlette routes in their own app, mounted beside BentoML's routes with BentoML's public
`@bentoml.asgi_app` (they need no batching); POST .../infer is MnistService.v2_infer.
"""

from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import BadInput, error_response
from service.model import Classifier
from service.v2.protocol import MODEL_NAME, Versions, current_versions
from service.v2.schemas import ServerMetadata


async def server_metadata(_: Request) -> Response:
    """GET /v2."""
    meta = ServerMetadata(name=MODEL_NAME, version=bentoml.__version__, extensions=["binary_tensor_data"])
    return JSONResponse(meta.model_dump())


async def live(_: Request) -> Response:
    """GET /v2/health/live: the process answers."""
    return JSONResponse({"live": True})


async def ready(_: Request) -> Response:
    """GET /v2/health/ready: every version loaded (they load before the worker serves)."""
    if current_versions() is None:
        return JSONResponse({"ready": False}, 503)
    return JSONResponse({"ready": True})


def _model(request: Request) -> Classifier:
    versions = current_versions()
    if versions is None:
        raise BadInput("the model is not loaded yet", "retry shortly", 503)
    return versions.find(request.path_params["name"], request.path_params.get("version"))


async def model_metadata(request: Request) -> Response:
    """GET /v2/models/{name}[/versions/{version}]."""
    try:
        model = _model(request)
    except BadInput as exc:
        return error_response(exc)
    versions: Versions = current_versions()  # type: ignore[assignment]
    named = [model.version] if "version" in request.path_params else versions.names()
    return JSONResponse(versions.metadata(model, named).model_dump())


async def model_ready(request: Request) -> Response:
    """GET /v2/models/{name}[/versions/{version}]/ready: 200 when loaded, else 4xx."""
    try:
        _model(request)
    except BadInput as exc:
        return error_response(exc)
    return JSONResponse({"name": request.path_params["name"], "ready": True})


def build_app() -> Starlette:
    """The v2 GET routes as an app for `@bentoml.asgi_app`."""
    return Starlette(routes=routes())


def routes() -> list[Route]:
    """The v2 GET routes; POST .../infer is MnistService.v2_infer."""
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
    ]
