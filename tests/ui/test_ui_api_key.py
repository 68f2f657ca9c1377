"""The draw-a-digit page on a service that asks for API keys (MNIST_API_KEYS, with MNIST_OPEN_UI so
that a browser can load the page): it asks for a key when the service answers 401, sends it as
X-API-Key, says so when a key is refused, and keeps it for the tab only. Headless Chromium
against `bentoml serve` with harness/tiny_model.py's detector model (tests/conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness.server import running_service
from tests.ui.test_ui_page import DIGIT_STROKES, draw, wait_for_answer

pytestmark = [pytest.mark.ui, pytest.mark.slow]

KEY = "page-key"


@pytest.fixture(scope="module")
def service_url(detector_models: Path) -> Iterator[str]:
    """The page fixture's service (requests elsewhere are refused): keys on, the page left open."""
    env = {
        "MNIST_MODELS_DIR": str(detector_models),
        "MNIST_WORKERS": "1",
        "MNIST_API_KEYS": KEY,
        "MNIST_OPEN_UI": "true",
    }
    with running_service(env=env) as url:
        yield url


def test_the_page_asks_for_a_key_and_then_answers(page: Page, service_url: str, page_log) -> None:
    keys_sent: list[str | None] = []
    page.on("request", lambda req: keys_sent.append(req.headers.get("x-api-key")) if "/predict" in req.url else None)
    page.goto(f"{service_url}/ui")
    expect(page.locator("#model-version")).to_contain_text("asks for an API key")
    draw(page, DIGIT_STROKES[7])
    wait_for_answer(page)
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("missing or unknown API key")
    expect(page.locator("#error")).to_contain_text("X-API-Key")  # what is accepted

    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Use this key").click()
    wait_for_answer(page)
    expect(page.locator("#error")).to_contain_text("That API key was not accepted")
    expect(page.locator("#key-form")).to_be_visible()

    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Use this key").click()
    wait_for_answer(page)
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#digit")).to_have_text(re.compile(r"^\d$"))
    expect(page.locator("#model-version")).not_to_contain_text("unknown")
    assert keys_sent[0] is None and "not-the-key" in keys_sent and keys_sent[-1] == KEY
    assert page_log.errors == [] and page_log.off_origin == []

    # Kept for the tab: a reload asks for nothing.
    page.reload()
    expect(page.locator("#model-version")).not_to_contain_text("unknown")
    draw(page, DIGIT_STROKES[1])
    wait_for_answer(page)
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#digit")).to_have_text(re.compile(r"^\d$"))
