"""The draw-a-digit page reads a number: "Several digits" widens the pad, and the page shows the
number /read_number read with each digit's box (headless Chromium against `bentoml serve`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from playwright.sync_api import Page, expect

from tests.ui.test_ui_page import DIGIT_STROKES, Stroke, draw, wait_for_answer

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def _in_slot(strokes: Sequence[Stroke], slot: int, slots: int = 3) -> list[Stroke]:
    """A digit's strokes moved into one of `slots` side-by-side places of the wide pad."""
    return [[((slot + x) / slots, y) for x, y in stroke] for stroke in strokes]


def _write(page: Page, digits: Sequence[int]) -> None:
    draw(page, [s for slot, d in enumerate(digits) for s in _in_slot(DIGIT_STROKES[d], slot)])


class TestNumber:
    def test_written_number_is_read_with_a_box_per_digit(self, page: Page, ui_url: str, page_log) -> None:
        page.goto(ui_url)
        page.get_by_label("Several digits").check()
        assert page.locator("#pad").evaluate("c => [c.width, c.height]") == [840, 280]
        _write(page, [1, 0, 7])
        wait_for_answer(page)
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("#number")).to_have_text("107")
        expect(page.locator("#number-confidence")).to_contain_text("% sure")
        expect(page.locator("#rtt")).to_contain_text("/read_number")
        items = page.locator("#number-digits li")
        expect(items).to_have_count(3)
        boxes = [[int(v) for v in b.split(",")] for b in items.evaluate_all("li => li.map(i => i.dataset.box)")]
        assert [b[0] for b in boxes] == sorted(b[0] for b in boxes), "digits are not left to right"
        for k, (x, y, w, h) in enumerate(boxes):  # each box inside its third of the 840x280 pad
            assert k * 280 <= x and x + w <= (k + 1) * 280 and y >= 0 and y + h <= 280, boxes
        # the drawing is shown with the boxes drawn on it, in their colour
        view = page.locator("#number-view")
        assert view.evaluate("c => [c.width, c.height]") == [840, 280]
        x, y, w, h = boxes[0]
        rgb = view.evaluate(f"c => Array.from(c.getContext('2d').getImageData({x + w // 2}, {y - 3}, 1, 1).data)")
        assert rgb[:3] == [245, 158, 11], f"no box drawn above the first digit: {rgb}"
        expect(page.locator(".answer")).to_be_hidden()  # the single-digit answer makes way
        assert page_log.errors == [] and page_log.failed == []

    def test_unticking_goes_back_to_one_digit(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        box = page.get_by_label("Several digits")
        box.check()
        _write(page, [1, 1])
        wait_for_answer(page)
        expect(page.locator("#number")).to_have_text("11")
        box.uncheck()
        assert page.locator("#pad").evaluate("c => [c.width, c.height]") == [280, 280]
        expect(page.locator("#number-answer")).to_be_hidden()
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        draw(page, DIGIT_STROKES[7])
        wait_for_answer(page)
        expect(page.locator("#digit")).to_have_text("7")
