"""The Open Inference Protocol's GET routes: server and model metadata, health, readiness.

Plain Starlette routes in their own app, mounted beside BentoML's routes with BentoML's public
`@bentoml.asgi_app` (they need no batching); POST .../infer is MnistService.v2_infer. They read
the worker's versions from the handle the service fills in once it has loaded them.
"""

from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import BadInput, error_response
from service.model import Classifier
from service.v2.protocol import MODEL_NAME, Loaded, Versions
from service.v2.schemas import ServerMetadata


async def server_metadata(_: Request) -> Response:
    """GET /v2."""
    meta = ServerMetadata(name=MODEL_NAME, version=bentoml.__version__, extensions=["binary_tensor_data"])
    return JSONResponse(meta.model_dump())


async def live(_: Request) -> Response:
    """GET /v2/health/live: the process answers."""
    return JSONResponse({"live": True})


class Routes:
    """The routes that need the worker's versions (None until the service has loaded them)."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded

    async def ready(self, _: Request) -> Response:
        """GET /v2/health/ready: every version loaded (they load before the worker serves)."""
        if self.loaded.versions is None:
            return JSONResponse({"ready": False}, 503)
        return JSONResponse({"ready": True})

    def _model(self, request: Request) -> tuple[Versions, Classifier]:
        versions = self.loaded.versions
        if versions is None:
            raise BadInput("the model is not loaded yet", "retry shortly", 503)
        return versions, versions.find(request.path_params["name"], request.path_params.get("version"))

    async def model_metadata(self, request: Request) -> Response:
        """GET /v2/models/{name}[/versions/{version}]."""
        try:
            versions, model = self._model(request)
        except BadInput as exc:
            return error_response(exc)
        named = [model.version] if "version" in request.path_params else versions.names()
        return JSONResponse(versions.metadata(model, named).model_dump())

    async def model_ready(self, request: Request) -> Response:
        """GET /v2/models/{name}[/versions/{version}]/ready: 200 when loaded, else 4xx."""
        try:
            self._model(request)
        except BadInput as exc:
            return error_response(exc)
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    def routes(self) -> list[Route]:
        """The v2 GET routes; POST .../infer is MnistService.v2_infer."""
        return [
            Route("/v2", server_metadata, methods=["GET"]),
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2/models/{name}", self.model_metadata, methods=["GET"]),
            Route("/v2/models/{name}/ready", self.model_ready, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}", self.model_metadata, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}/ready", self.model_ready, methods=["GET"]),
        ]


def build_app(loaded: Loaded) -> Starlette:
    """The v2 GET routes as an app for `@bentoml.asgi_app`, reading `loaded`'s versions."""
    return Starlette(routes=Routes(loaded).routes())
