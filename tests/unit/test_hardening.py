"""The hardening pieces without a server: API keys and the uvicorn and circus hand-offs. Each
hand-off is installed for one test and undone after it; that a real server uses them is
checked by a real server (tests/service/test_service_hardening.py answers 431 and 408 and
carries the headers; tests/reliability/test_faults_workers.py logs and replaces a killed worker)."""

from __future__ import annotations

import hmac
import resource
import warnings
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.server import connections, security, supervisor
from service.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx in its test client
    from starlette.testclient import TestClient

pytestmark = pytest.mark.unit


def _app(**settings: object) -> TestClient:
    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    s = Settings(api_keys="alpha, beta", **settings)
    app = Starlette(
        routes=[
            Route(p, ok, methods=["GET", "POST", "OPTIONS"])
            for p in ("/predict", "/readyz", "/metrics", "/ui", "/ui/app.js")
        ]
    )
    return TestClient(security.ApiKeys(app, s.keys, security.open_paths(s)))


def test_api_keys_refuse_with_our_json_and_accept_either_header() -> None:
    client = _app()
    refused = client.post("/predict")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert set(refused.json()) == {"error", "accepted"}
    assert client.post("/predict", headers={"authorization": "Bearer gamma"}).status_code == 401
    assert client.post("/predict", headers={"authorization": "Basic alpha"}).status_code == 401
    assert client.post("/predict", headers={"authorization": "Bearer beta"}).status_code == 200
    assert client.post("/predict", headers={"x-api-key": "alpha"}).status_code == 200
    assert client.options("/predict").status_code == 200  # CORS preflights carry no key


def test_health_is_open_by_default_metrics_and_ui_are_not() -> None:
    client = _app()
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/ui").status_code == 401 and client.get("/ui/app.js").status_code == 401


def test_each_path_group_can_be_opened_or_protected() -> None:
    client = _app(open_health=False, open_metrics=True, open_ui=True)
    assert client.get("/readyz").status_code == 401
    assert client.get("/metrics").status_code == 200
    assert client.get("/ui").status_code == 200 and client.get("/ui/app.js").status_code == 200
    assert client.get("/uix").status_code == 401  # a prefix match needs the slash


def test_keys_are_compared_as_digests_against_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the presented key's digest meets every known digest through
    hmac.compare_digest, even when the first one already matched."""
    keys = security.ApiKeys(lambda *_: None, ["alpha", "beta"])  # type: ignore[arg-type]
    assert keys.digests == (security.digest("alpha"), security.digest("beta"))
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", compare_digest)
    assert keys.allows(b"alpha")
    assert compared == [(security.digest("alpha"), known) for known in keys.digests]
    assert keys.allows(b"beta") and not keys.allows(b"alph") and not keys.allows(None)


def test_no_keys_no_middleware() -> None:
    """Nothing changes when MNIST_API_KEYS is unset: the service gets no middleware."""

    class Fake:
        def __init__(self) -> None:
            self.middlewares: list[object] = []

        def add_asgi_middleware(self, *args: object, **kwargs: object) -> None:
            self.middlewares.append(args)

    fake = Fake()
    security.guarded(Settings(api_keys=""))(fake)
    assert fake.middlewares == []
    security.guarded(Settings(api_keys="alpha"))(fake)
    assert len(fake.middlewares) == 1


@pytest.fixture
def pristine_uvicorn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """uvicorn as shipped for one test (importing service.service installs our Config); whatever
    was there before is put back after it."""
    import uvicorn.config

    before = uvicorn.Config
    monkeypatch.setattr(uvicorn, "Config", uvicorn.config.Config)
    yield
    monkeypatch.undo()
    assert uvicorn.Config is before


@pytest.mark.usefixtures("pristine_uvicorn")
def test_uvicorn_gets_our_protocol_and_headers() -> None:
    connections.install(Settings(max_header_bytes=1000, header_timeout_s=2.5))
    config = uvicorn.Config(app=lambda *_: None)
    assert issubclass(config.http, connections.GuardedProtocol)
    assert config.http.limits.max_header_bytes == 1000 and config.http.limits.header_timeout_s == 2.5
    assert ("x-content-type-options", "nosniff") in config.headers
    own = uvicorn.Config(app=lambda *_: None, http="h11", headers=[])
    assert own.http == "h11" and own.headers == []


@pytest.mark.usefixtures("pristine_uvicorn")
def test_security_headers_can_be_turned_off() -> None:
    connections.install(Settings(security_headers=False))
    assert uvicorn.Config(app=lambda *_: None).headers == []


class FakeLimits:
    """RLIMIT_NOFILE of a made-up host, as service.server.connections sees it (the real one is untouched)."""

    def __init__(self, soft: int, hard: int, raisable: bool = True) -> None:
        self.soft, self.hard, self.raisable = soft, hard, raisable

    def getrlimit(self, _: int) -> tuple[int, int]:
        return self.soft, self.hard

    def setrlimit(self, _: int, limits: tuple[int, int]) -> None:
        if not self.raisable:
            raise ValueError("not allowed")
        self.soft, self.hard = limits


@pytest.mark.parametrize(
    ("soft", "hard", "raisable", "wanted", "budget", "soft_after"),
    [
        (1024, 4096, True, 10**9, 4096 - connections.RESERVED_FILES, 4096),  # raised to the hard limit
        (1024, 4096, True, 100, 100, 1024),  # enough already: left as it is
        (1024, 4096, False, 10**9, 1024 - connections.RESERVED_FILES, 1024),  # a host that refuses
        (1024, resource.RLIM_INFINITY, True, 5000, 5000, 5000 + connections.RESERVED_FILES),
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, True, 5000, 5000, resource.RLIM_INFINITY),
        (64, 64, True, 10**9, 16, 64),  # never under 16, however tight
    ],
)
def test_connection_budget_fits_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, raisable: bool, wanted: int, budget: int, soft_after: int
) -> None:
    limits = FakeLimits(soft, hard, raisable)
    monkeypatch.setattr(connections.resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(connections.resource, "setrlimit", limits.setrlimit)
    assert connections.connection_budget(wanted) == budget
    assert limits.soft == soft_after and limits.hard == hard


def test_exit_codes_are_worded() -> None:
    assert supervisor.describe_exit(-9) == "SIGKILL"
    assert supervisor.describe_exit(3) == "exit code 3"


def test_circus_watchers_get_our_hooks_and_metrics_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher built after install() reports exits, keeps this instance's metrics apart and
    replaces dead workers even where BentoML asks it not to (in containers). circus's own
    Watcher is put back after the test."""
    import circus.watcher

    shipped = circus.watcher.Watcher
    while getattr(shipped, "supervised", False):  # importing service.service installs ours
        shipped = shipped.__mro__[1]
    monkeypatch.setattr(circus.watcher, "Watcher", shipped)
    supervisor.install()
    assert circus.watcher.Watcher is not shipped and issubclass(circus.watcher.Watcher, shipped)
    watcher = circus.watcher.Watcher("service", "true", env={"PROMETHEUS_MULTIPROC_DIR": "/shared"}, respawn=False)
    assert watcher.env["PROMETHEUS_MULTIPROC_DIR"] == supervisor.instance_metrics_dir() != "/shared"
    assert {"before_reap", "after_reap"} <= set(watcher.hooks)
    assert watcher.respawn  # containers too
