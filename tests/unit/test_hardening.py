"""The hardening pieces without a server: API keys, the connection budget, the words for a
worker's exit. The uvicorn and circus hand-offs are tests/unit/test_internals.py's; that a real
server uses them is checked by a real server (tests/service/test_service_hardening.py answers
431 and 408 and carries the headers; tests/reliability/test_faults_workers.py logs and replaces
a killed worker)."""

from __future__ import annotations

import hmac
import resource
import warnings

import pytest
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
