"""The draw-a-digit page says plainly when it does not see a digit: headless Chromium
against `bentoml serve` with harness/tiny_model.py's detector model (tests/conftest.py), whose
digit score is a fixed function of mean ink (threshold 0.5): a drawn digit scores high, a
filled square about 0. The model's digits are random; only the detector's verdict is tested."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.ui.test_ui_page import DIGIT_STROKES, WAIT_MS, choose_file, draw, wait_for_answer

pytestmark = [pytest.mark.ui, pytest.mark.slow]


@pytest.fixture(scope="module")
def service_url(detector_url: str) -> str:
    """The page fixture's service (requests elsewhere are refused): the detector model's."""
    return detector_url


def _square_png() -> bytes:
    """A photo-sized white square on black: framed, it fills 20x20 of 28x28 (mean ink 0.51)."""
    pixels = np.zeros((280, 280), np.uint8)
    pixels[40:240, 40:240] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _watch_csp(page: Page) -> list[str]:
    """Console messages about the content security policy (a blocked script, style or image)."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    return violations


def test_a_drawn_digit_shows_its_digit_score(page: Page, service_url: str, page_log) -> None:
    csp = _watch_csp(page)
    answer = page.goto(f"{service_url}/ui")
    assert answer is not None and "script-src" not in answer.headers["content-security-policy"]  # default-src 'self'
    draw(page, DIGIT_STROKES[7])
    wait_for_answer(page)
    expect(page.locator("#digit-score")).to_have_text(re.compile(r"^0\.\d\d+ \(looks like a digit\)$"))
    expect(page.locator("#not-digit")).to_be_hidden()
    expect(page.locator("#result")).to_have_attribute("data-digit", "yes")
    assert page_log.errors == [] and page_log.failed == [] and csp == []


def test_a_non_digit_upload_says_so_with_its_score(page: Page, service_url: str, results_dir: Path, page_log) -> None:
    csp = _watch_csp(page)
    page.goto(f"{service_url}/ui")
    choose_file(page, _square_png(), "image/png", "square.png")
    wait_for_answer(page)
    notice = page.get_by_role("status").filter(has_text="doesn't look like a digit")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("That doesn't look like a digit")
    expect(notice).to_contain_text("Digit score 0.00, below the 0.50 a digit needs")
    expect(page.locator("#digit-score")).to_have_text("0.00 (not a digit)")
    # the model's best guess is still shown, muted
    expect(page.locator("#result")).to_have_attribute("data-state", "done")
    expect(page.locator("#result")).to_have_attribute("data-digit", "no")
    expect(page.locator("#digit")).to_have_text(re.compile(r"^\d$"))
    expect(page.locator("#error")).to_be_hidden()
    page.screenshot(path=results_dir / "not-a-digit.png", full_page=True)
    # drawing afterwards starts afresh, and the notice goes with the old answer
    draw(page, DIGIT_STROKES[7])
    wait_for_answer(page)
    expect(page.locator("#not-digit")).to_be_hidden(timeout=WAIT_MS)
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#digit-score")).to_have_text("–")
    assert page_log.errors == [] and csp == []


class TestRejecting:
    """MNIST_REJECT_NON_DIGITS=true (threshold 0.6): /predict refuses, the page says why."""

    @pytest.fixture
    def service_url(self, rejecting_detector_url: str) -> str:
        return rejecting_detector_url

    def test_a_refused_upload_is_explained_as_not_a_digit(
        self, page: Page, service_url: str, results_dir: Path
    ) -> None:
        refusal = httpx.post(
            f"{service_url}/predict", content=_square_png(), headers={"content-type": "image/png"}
        ).json()
        page.goto(f"{service_url}/ui")
        choose_file(page, _square_png(), "image/png", "square.png")
        wait_for_answer(page)
        notice = page.get_by_role("status").filter(has_text="doesn't look like a digit")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(f"The service refused it: {refusal['error']}.")
        expect(notice).to_contain_text("threshold 0.60")
        expect(page.get_by_role("alert")).to_be_hidden()
        expect(page.locator("#digit")).to_have_text("–")
        page.screenshot(path=results_dir / "not-a-digit-refused.png", full_page=True)
        draw(page, DIGIT_STROKES[7])
        wait_for_answer(page)
        expect(page.locator("#result")).to_have_attribute("data-state", "done")
        expect(page.locator("#not-digit")).to_be_hidden()
