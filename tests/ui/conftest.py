"""Headless Chromium (the system's, driven by Playwright) pointed at the service's /ui page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, Route, sync_playwright

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results" / "ui"

# Nothing downloads a browser: we drive the system's Chromium. These flags keep it quiet,
# offline and happy in containers without a GPU or a sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET_CHROMIUM = (
    "No Chromium found for the UI tests. Install Debian's package with "
    "`sudo apt-get install -y chromium` (it gives /usr/bin/chromium), or point MNIST_CHROMIUM "
    "at a Chromium or Chrome binary."
)


def find_chromium() -> str | None:
    """MNIST_CHROMIUM if set, else the first Chromium-like browser on PATH."""
    if explicit := os.environ.get("MNIST_CHROMIUM"):
        return explicit if Path(explicit).is_file() else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The browser binary; CI must have one (fail), a laptop may not (skip and say how)."""
    path = find_chromium()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(HOW_TO_GET_CHROMIUM, pytrace=False)
        pytest.skip(HOW_TO_GET_CHROMIUM)
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped: Playwright's sync API keeps an event loop running in the main thread
    until it stops, which would break asyncio.run in every test collected after tests/ui."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def ui_url(service_url: str) -> str:
    return f"{service_url}/ui"


@pytest.fixture(scope="session")
def results_dir() -> Path:
    """Where screenshots go (git-ignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so that `page` can screenshot failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class PageLog:
    """What the page did that it should not: requests leaving the service, script errors, 404s."""

    def __init__(self) -> None:
        self.off_origin: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []  # "<status> <url>" of every 4xx/5xx the page received


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(
    browser: Browser,
    service_url: str,
    results_dir: Path,
    page_log: PageLog,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    """A fresh page with touch enabled; any request off the service's origin is refused."""
    origin = urlsplit(service_url)[:2]
    context = browser.new_context(viewport={"width": 1024, "height": 760}, has_touch=True, device_scale_factor=1)

    def only_the_service(route: Route, req: Request) -> None:
        if urlsplit(req.url)[:2] == origin or req.url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            page_log.off_origin.append(req.url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()
    page.on("pageerror", lambda exc: page_log.errors.append(str(exc)))
    page.on(
        "response",
        lambda resp: page_log.failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None,
    )
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=results_dir / f"FAILED-{request.node.name}.png", full_page=True)
    context.close()
