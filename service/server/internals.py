"""Every reach into a third-party library's internals, in one place: the fence.

The rest of service/ uses these libraries through their public API only, plus the names below.
Each entry says what it relies on (the upstream version and file it was written against) and
why no public hook does the job. `check_versions()` runs at start-up: outside the range each
reach was written for, the service refuses to start (the reaches would fail quietly: bodies
parsed by BentoML's own parser, with its error shape and its URL fetching; a server without
header deadlines); inside the range but not the version tested, it logs one warning.
`install()` applies the process-wide patches, only in `bentoml serve`'s own processes
(`serving_process()`); `uninstall()` puts the libraries back (tests: `installed()`).

- IO specs that read and write HTTP themselves (ReadsRequest, WritesResponse), and
  IORootModel for a list or bytes answer: bentoml 1.4.40, _bentoml_sdk/io_models.py (IOMixin,
  IORootModel), called from _bentoml_impl/server/app.py (ServiceAppFactory.api_endpoint).
- API methods bound once per instance (bind_api_methods): bentoml 1.4.40,
  _bentoml_sdk/method.py (APIMethod.__get__).
- uvicorn.Config's `http` and `headers` defaults: uvicorn 0.55.0, uvicorn/config.py (BentoML
  builds the Config in _bentoml_impl/worker/service.py); HttpToolsProtocol subclassed by
  service.server.connections: uvicorn/protocols/http/httptools_impl.py.
- circus.watcher.Watcher replaced: circus 0.18.3 (shipped as `kantoku`), circus/watcher.py
  (hooks, initialize's arbiter and its manage_watchers); BentoML builds the watcher in
  bentoml/serving.py::create_watcher.
- a Histogram's buckets written in bulk (histogram_parts): prometheus_client 0.26.0,
  prometheus_client/metrics.py (Histogram._upper_bounds, _sum, _buckets).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from _bentoml_sdk.io_models import IORootModel as IORootModel
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as HttpToolsProtocol

logger = logging.getLogger("service")

# library -> (the versions each reach below was written for: [low, high), the version tested)
SUPPORTED: dict[str, tuple[tuple[int, int], tuple[int, int], str]] = {
    "bentoml": ((1, 4), (1, 5), "1.4.40"),
    "uvicorn": ((0, 30), (1, 0), "0.55.0"),
    "circus": ((0, 18), (0, 19), "0.18.3"),
    "prometheus_client": ((0, 17), (1, 0), "0.26.0"),
}


def installed_versions() -> dict[str, str]:
    """The installed version of each library fenced here (circus ships as `kantoku`, whose
    distribution name differs: its own __version__ is read)."""
    import importlib.metadata

    import bentoml
    import circus
    import uvicorn

    return {
        "bentoml": bentoml.__version__,
        "uvicorn": uvicorn.__version__,
        "circus": str(circus.__version__),
        "prometheus_client": importlib.metadata.version("prometheus_client"),
    }


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:2]]
    padded = [*parts, 0, 0]
    return padded[0], padded[1]


def check_versions(versions: dict[str, str] | None = None) -> list[str]:
    """Refuse (RuntimeError) a library outside the range its reach was written for; return
    (and log once) a warning per library inside the range but not the version tested."""
    versions = installed_versions() if versions is None else versions
    refused, untested = [], []
    for name, (low, high, tested) in SUPPORTED.items():
        have = versions[name]
        if not low <= _major_minor(have) < high:
            span = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
            refused.append(f"{name} {have} (service/server/internals.py relies on {name}{span}, tested on {tested})")
        elif have != tested:
            untested.append(f"{name} {have} (tested on {tested})")
    if refused:
        raise RuntimeError(
            "the service reaches into these libraries' internals and does not start on these versions: "
            + "; ".join(refused)
            + ". Install uv.lock's versions (make install-serve), or port service/server/internals.py."
        )
    if untested:
        logger.warning(
            "library internals the service relies on are untested on: %s; "
            "tests/service/test_service_hardening.py and tests/reliability check them",
            ", ".join(untested),
        )
    return untested


def serving_process(argv: list[str] | None = None) -> bool:
    """True in `bentoml serve`'s own processes (its arbiter and its workers), where the
    patches belong; False where tests, `bentoml build` or scripts import the service."""
    argv = sys.argv if argv is None else argv
    main = Path(argv[0]).as_posix() if argv else ""
    if main.endswith("_bentoml_impl/worker/service.py"):  # `python -m _bentoml_impl.worker.service`
        return True
    arbiter = Path(main).name == "bentoml" or main.endswith("bentoml/__main__.py")
    return arbiter and len(argv) > 1 and argv[1] == "serve"


# --- BentoML -------------------------------------------------------------------------------
# BentoML 1.4's IO specs (IODescriptor) parse a request with the Serde of the API's media
# type and offer no public hook for a spec that reads the body itself. The server calls
# `input_spec.from_http_request(request, serde)` and `output_spec.to_http_response(obj, serde)`
# (_bentoml_impl/server/app.py, ServiceAppFactory.api_endpoint), classmethods a spec may
# override (_bentoml_sdk/io_models.py, IOMixin). Ours stream the body under byte limits, take
# multipart or a raw image, and answer every refusal in our JSON; BentoML's own parser answers
# in its shape and fetches URLs given in place of files. Specs mix these in first and define
# `read` / `respond`: the two overrides live here only.


class ReadsRequest:
    """An input spec that reads its request itself: `read(request)` -> the spec."""

    @classmethod
    async def read(cls, request: Request) -> Any:
        raise NotImplementedError

    @classmethod
    def from_http_request(cls, request: Request, serde: Any) -> Awaitable[Any]:
        return cls.read(request)  # BentoML awaits it: no coroutine of our own in between


class WritesResponse:
    """An output spec that writes its response itself: `respond(answer)` -> the Response."""

    @classmethod
    def respond(cls, obj: Any) -> Response:
        raise NotImplementedError

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        return cls.respond(obj)


def bind_api_methods(instance: object, names: Any) -> None:
    """Bind each API method to the instance once. BentoML looks each API method up twice per
    request, and APIMethod.__get__ (_bentoml_sdk/method.py) rebuilds its bound wrapper every
    time (inspect.signature, functools.wraps): 6% of a /predict worker's time in a py-spy
    profile. The wrapper holds nothing per request; an instance attribute wins over the
    class's non-data descriptor. No public switch turns the rebuilding off."""
    for name in names:
        setattr(instance, name, getattr(instance, name))


# --- uvicorn -------------------------------------------------------------------------------
# BentoML's worker builds `uvicorn.Config(...)` itself (_bentoml_impl/worker/service.py) and
# forwards none of uvicorn's `http` and `headers` options: no public hook gives a worker a
# protocol class of its own. uvicorn.Config (uvicorn/config.py) is replaced by a subclass
# whose defaults are ours; HttpToolsProtocol (uvicorn/protocols/http/httptools_impl.py) is
# subclassed by service.server.connections, which uses its attributes connections, cycle,
# transport, loop and server_state and its parser callbacks.


def _install_uvicorn(http: type, headers: list[tuple[str, str]]) -> None:
    import uvicorn

    if getattr(uvicorn.Config, "fenced", False):
        return

    class FencedConfig(uvicorn.Config):
        """uvicorn.Config with our protocol and headers as defaults."""

        fenced = True
        shipped = uvicorn.Config

        def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("http", http)
            kwargs.setdefault("headers", headers)
            super().__init__(app, *args, **kwargs)

    uvicorn.Config = FencedConfig  # type: ignore[misc]


def _uninstall_uvicorn() -> None:
    import uvicorn

    while getattr(uvicorn.Config, "fenced", False):
        uvicorn.Config = uvicorn.Config.shipped  # type: ignore[attr-defined,misc]


# --- circus --------------------------------------------------------------------------------
# BentoML 1.4 builds the workers' circus Watcher itself (bentoml/serving.py::create_watcher,
# `from circus.watcher import Watcher` at call time) and passes circus no hooks: circus logs a
# worker's death at debug level only, and BentoML turns respawning off in containers.
# circus.watcher.Watcher (circus/watcher.py) is replaced by a subclass from `make_watcher`.


def _install_circus(make_watcher: Callable[[type], type]) -> None:
    try:
        import circus.watcher
    except ImportError:  # a serve-only environment always has it (bentoml needs it)
        return
    if getattr(circus.watcher.Watcher, "fenced", False):
        return
    shipped = circus.watcher.Watcher
    watcher = make_watcher(shipped)
    watcher.fenced, watcher.shipped = True, shipped  # type: ignore[attr-defined]
    circus.watcher.Watcher = watcher


def _uninstall_circus() -> None:
    with contextlib.suppress(ImportError):
        import circus.watcher

        while getattr(circus.watcher.Watcher, "fenced", False):
            circus.watcher.Watcher = circus.watcher.Watcher.shipped


# --- prometheus_client ---------------------------------------------------------------------
# prometheus_client has no batch observe. A Histogram (prometheus_client/metrics.py) keeps its
# bounds in `_upper_bounds` (ending with +Inf), its sum in `_sum` and a value per bucket in
# `_buckets` (each summed at collection); one inc per bucket touched replaces two writes per
# value (each a lock and, in multi-process mode, an mmap write).


def histogram_parts(histogram: Any) -> tuple[list[float], Any, list[Any]]:
    """(upper bounds ending with +Inf, the sum's value, each bucket's value) of a Histogram."""
    return histogram._upper_bounds, histogram._sum, histogram._buckets


# --- install and undo ----------------------------------------------------------------------


def install(http: type, headers: list[tuple[str, str]], make_watcher: Callable[[type], type]) -> None:
    """The process-wide patches: uvicorn's protocol and headers, circus's watcher."""
    _install_uvicorn(http, headers)
    _install_circus(make_watcher)


def uninstall() -> None:
    """uvicorn and circus as shipped."""
    _uninstall_uvicorn()
    _uninstall_circus()


@contextlib.contextmanager
def installed(http: type, headers: list[tuple[str, str]], make_watcher: Callable[[type], type]) -> Iterator[None]:
    """The patches for the length of a block (tests), and the libraries as shipped after it."""
    install(http, headers, make_watcher)
    try:
        yield
    finally:
        uninstall()
