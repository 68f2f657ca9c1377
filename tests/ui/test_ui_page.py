"""The draw-a-digit page end to end: headless Chromium against a locally started service."""

from __future__ import annotations

import base64
import io
import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from harness.mnist import load_mnist
from harness.uploads import render

pytestmark = [pytest.mark.ui, pytest.mark.slow]

WAIT_MS = 30_000  # generous: CI machines may be busy; nothing here asserts on speed
Stroke = Sequence[tuple[float, float]]  # points in [0, 1] x [0, 1] of the pad, y down


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> list[tuple[float, float]]:
    """A closed loop drawn from the top, anticlockwise on screen, as people draw a 0."""
    return [(cx - rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Digits as people draw them: one list of strokes per digit, each a polyline.
DIGIT_STROKES: dict[int, list[Stroke]] = {
    0: [_ellipse(0.5, 0.5, 0.2, 0.3)],
    1: [[(0.53, 0.2), (0.47, 0.8)]],
    2: [
        [
            (0.32, 0.33),
            (0.38, 0.23),
            (0.5, 0.19),
            (0.62, 0.23),
            (0.67, 0.33),
            (0.62, 0.46),
            (0.5, 0.58),
            (0.32, 0.78),
            (0.7, 0.78),
        ]
    ],
    3: [
        [
            (0.33, 0.24),
            (0.45, 0.19),
            (0.6, 0.21),
            (0.66, 0.3),
            (0.6, 0.41),
            (0.47, 0.47),
            (0.62, 0.53),
            (0.68, 0.65),
            (0.6, 0.77),
            (0.45, 0.81),
            (0.32, 0.76),
        ]
    ],
    4: [[(0.38, 0.2), (0.3, 0.58), (0.72, 0.58)], [(0.6, 0.3), (0.6, 0.82)]],
    7: [[(0.3, 0.22), (0.7, 0.22), (0.45, 0.8)]],
}


# --- helpers -------------------------------------------------------------------------------


def _to_screen(page: Page, stroke: Stroke) -> list[tuple[float, float]]:
    box = page.locator("#pad").bounding_box()
    assert box is not None, "the drawing pad is not on screen"
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]


def _densify(points: list[tuple[float, float]], step_px: float = 6.0) -> list[tuple[float, float]]:
    """Points every few pixels along the polyline, like a real pointer's move events."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step_px))
        out += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return out


def draw(page: Page, strokes: Sequence[Stroke], pointer: str = "mouse") -> None:
    """Draw strokes with a mouse (Playwright), or a pen or finger (raw CDP input events)."""
    cdp = page.context.new_cdp_session(page) if pointer != "mouse" else None
    for stroke in strokes:
        points = _densify(_to_screen(page, stroke))
        if pointer == "mouse":
            page.mouse.move(*points[0])
            page.mouse.down()
            for x, y in points[1:]:
                page.mouse.move(x, y)
            page.mouse.up()
        elif pointer == "pen":
            assert cdp is not None
            for i, (x, y) in enumerate(points):
                kind = "mousePressed" if i == 0 else "mouseMoved"
                cdp.send(
                    "Input.dispatchMouseEvent",
                    {
                        "type": kind,
                        "x": x,
                        "y": y,
                        "button": "left",
                        "buttons": 1,
                        "clickCount": 1,
                        "pointerType": "pen",
                    },
                )
            cdp.send(
                "Input.dispatchMouseEvent",
                {"type": "mouseReleased", "x": x, "y": y, "button": "left", "clickCount": 1, "pointerType": "pen"},
            )
        elif pointer == "touch":
            assert cdp is not None
            for i, (x, y) in enumerate(points):
                kind = "touchStart" if i == 0 else "touchMove"
                cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        else:
            raise ValueError(f"unknown pointer {pointer!r}")
    if cdp is not None:
        cdp.detach()


def wait_for_answer(page: Page) -> None:
    """Wait until the newest request has been answered (or has failed)."""
    expect(page.locator("#result")).to_have_attribute("aria-busy", "false", timeout=WAIT_MS)
    expect(page.locator("#result")).to_have_attribute("data-state", re.compile("done|error"))


def expect_digit(page: Page, digit: int) -> None:
    """The page shows `digit` everywhere it should: big, as the top bar, with what the model saw."""
    wait_for_answer(page)
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#digit")).to_have_text(str(digit))
    expect(page.locator("#bars li.best")).to_have_attribute("data-digit", str(digit))
    expect(page.locator("#confidence")).to_have_text(re.compile(r"\d+\.\d% confident"))
    confidence = float(page.locator("#confidence").inner_text().split("%")[0]) / 100
    bar = page.locator("#bars li.best").evaluate(
        "li => li.querySelector('.fill').offsetWidth / li.querySelector('.track').offsetWidth"
    )
    assert bar == pytest.approx(confidence, abs=0.02), "the top bar's length is not its probability"
    expect(page.locator("#rtt")).to_have_text(re.compile(r"^\d+ ms"))
    expect(page.locator("#model-version")).not_to_have_text("–")
    seen = page.locator("#seen").evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert seen == [True, 28, 28], f"the 28x28 image the model saw is not shown: {seen}"


def pad_ink(page: Page) -> int:
    """Brightest channel value on the pad: 0 when it is clear (white ink on black)."""
    return page.locator("#pad").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
        ".reduce((m, v, i) => (i % 4 === 3 ? m : Math.max(m, v)), 0)"
    )


def choose_file(page: Page, data: bytes, mime: str, name: str) -> None:
    page.get_by_label("Upload a photo").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def drop_file(page: Page, data: bytes, mime: str, name: str) -> None:
    """Drop a file on the pad the way a file manager does (a DataTransfer holding a File)."""
    transfer = page.evaluate_handle(
        """([b64, mime, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), mime, name],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


@pytest.fixture(scope="module")
def mnist_photos(mnist_data_dir: Path) -> dict[int, tuple[bytes, str]]:
    """One phone-photo-like JPEG per digit, of a clear MNIST test digit (closest to its class mean).

    The page is under test here, not the model: an ambiguous scrawl would make these tests
    about the model's accuracy, which tests/regression guards.
    """
    images, labels = load_mnist(mnist_data_dir, "test")
    rng = np.random.default_rng(5)
    photos = {}
    for d in range(10):
        candidates = np.flatnonzero(labels == d)[:200]
        flat = images[candidates].reshape(len(candidates), -1).astype(np.float32)  # (200, 784)
        flat /= np.linalg.norm(flat, axis=1, keepdims=True)
        typical = candidates[int(np.argmax(flat @ flat.mean(axis=0)))]
        photos[d] = render(images[typical], "photo", rng)
    return photos


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# --- the page itself -----------------------------------------------------------------------


class TestPage:
    @pytest.mark.parametrize("path", ["/ui", "/ui/"])
    def test_served_offline_with_the_served_model(self, page: Page, service_url: str, page_log, path: str) -> None:
        page.goto(service_url + path)
        expect(page.get_by_role("heading", name="Draw a digit")).to_be_visible()
        expect(page.locator("#bars li")).to_have_count(10)  # app.js ran
        expect(page.locator("html")).to_have_css("background-color", "rgb(245, 246, 248)")  # style.css
        assert page.locator("#pad").evaluate("c => getComputedStyle(c).touchAction") == "none"
        version = page.request.get(f"{service_url}/model").json()["version"]
        expect(page.locator("#model-version")).to_contain_text(version, timeout=WAIT_MS)
        expect(page.locator("#placeholder")).to_be_visible()
        expect(page.locator("#error")).to_be_hidden()
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_hidden()
        assert page_log.off_origin == [], "the page must work offline (no CDN, no fonts)"
        assert page_log.errors == []
        assert page_log.failed == []

    def test_controls_are_labelled_and_reachable_by_keyboard(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        wanted = {
            "clear": page.get_by_role("button", name="Clear"),
            "predict": page.get_by_role("button", name="Predict"),
            "upload": page.get_by_label("Upload a photo"),
        }
        for control in wanted.values():
            expect(control).to_have_count(1)
        expect(page.get_by_role("img", name=re.compile("Drawing area"))).to_have_count(1)
        reached = set()
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("document.activeElement.id"))
        assert set(wanted) <= reached, f"Tab reached only {reached}"

    def test_text_contrast_meets_wcag_aa(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        page.evaluate("document.getElementById('error').hidden = false")
        page.evaluate("document.getElementById('error').textContent = 'x'")
        page.evaluate("document.getElementById('not-digit').hidden = false")
        page.evaluate("document.getElementById('not-digit-detail').textContent = 'x'")
        ratios = page.evaluate(
            """() => {
              const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
              const lum = ([r, g, b]) => [r, g, b].map((v) => v / 255)
                .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
                .reduce((acc, v, i) => acc + v * [0.2126, 0.7152, 0.0722][i], 0);
              const background = (el) => {
                for (; el; el = el.parentElement) {
                  const c = rgb(getComputedStyle(el).backgroundColor);
                  if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
                }
                return [255, 255, 255];
              };
              const out = {};
              for (const sel of ["header p", "h2", "button#clear", "button#predict",
                                 ".file-button", ".hint", "#placeholder", "#error",
                                 "figcaption", ".meta dt", "#bars .d", "footer a",
                                 ".not-digit-title", "#not-digit-detail"]) {
                const el = document.querySelector(sel);
                const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
                out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
              }
              return out;
            }"""
        )
        low = {sel: round(r, 2) for sel, r in ratios.items() if r < 4.5}
        assert not low, f"text below WCAG AA contrast (4.5:1): {low}"


# --- drawing -------------------------------------------------------------------------------


class TestDrawing:
    @pytest.mark.parametrize(
        ("digit", "pointer"),
        [(0, "mouse"), (1, "touch"), (2, "mouse"), (3, "mouse"), (4, "pen"), (7, "mouse")],
    )
    def test_drawn_digit_is_recognised(
        self, page: Page, ui_url: str, results_dir: Path, page_log, digit: int, pointer: str
    ) -> None:
        page.goto(ui_url)
        draw(page, DIGIT_STROKES[digit], pointer)
        expect_digit(page, digit)
        expect(page.locator("#result")).to_have_attribute("data-source", "drawing")
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_hidden()  # the pad shows
        page.screenshot(path=results_dir / f"drawn-{digit}-{pointer}.png", full_page=True)
        assert page_log.errors == []

    def test_prediction_updates_while_drawing(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        points = _densify(_to_screen(page, DIGIT_STROKES[7][0]))
        page.mouse.move(*points[0])
        page.mouse.down()
        with page.expect_request(re.compile(r"/predict$"), timeout=WAIT_MS):
            for x, y in points[1:]:
                page.mouse.move(x, y)
        # Still drawing (button down) and the page has already asked and shows an answer.
        wait_for_answer(page)
        expect(page.locator("#digit")).not_to_have_text("–")
        page.mouse.up()
        expect_digit(page, 7)


# --- uploads -------------------------------------------------------------------------------


class TestUpload:
    @pytest.mark.parametrize("digit", [3, 5, 8])
    def test_uploaded_photo_is_recognised(
        self, page: Page, ui_url: str, results_dir: Path, mnist_photos, digit: int
    ) -> None:
        data, mime = mnist_photos[digit]
        page.goto(ui_url)
        choose_file(page, data, mime, f"digit-{digit}.jpg")
        expect_digit(page, digit)
        expect(page.locator("#result")).to_have_attribute("data-source", "upload")
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_visible()
        page.screenshot(path=results_dir / f"uploaded-{digit}.png", full_page=True)

    def test_dropped_photo_is_recognised(self, page: Page, ui_url: str, mnist_photos) -> None:
        data, mime = mnist_photos[9]
        page.goto(ui_url)
        drop_file(page, data, mime, "digit-9.jpg")
        expect_digit(page, 9)
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_visible()

    def test_drawing_after_an_upload_starts_afresh(self, page: Page, ui_url: str, mnist_photos) -> None:
        page.goto(ui_url)
        choose_file(page, *mnist_photos[6], "digit-6.jpg")
        expect_digit(page, 6)
        draw(page, DIGIT_STROKES[1])
        expect_digit(page, 1)
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_hidden()


# --- clearing ------------------------------------------------------------------------------


class TestClear:
    def test_clear_resets_pad_and_answer(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        draw(page, DIGIT_STROKES[7])
        expect_digit(page, 7)
        assert pad_ink(page) == 255
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        expect(page.locator("#digit")).to_have_text("–")
        expect(page.locator("#bars .p")).to_have_text(["–"] * 10)
        expect(page.locator("#bars li.best")).to_have_count(0)
        expect(page.locator("#seen")).not_to_have_attribute("src", re.compile("."))
        expect(page.locator("#placeholder")).to_be_visible()
        assert pad_ink(page) == 0

    def test_clear_removes_an_uploaded_photo(self, page: Page, ui_url: str, mnist_photos) -> None:
        page.goto(ui_url)
        choose_file(page, *mnist_photos[2], "digit-2.jpg")
        expect_digit(page, 2)
        page.get_by_role("button", name="Clear").click()
        expect(page.get_by_alt_text("The photo you uploaded")).to_be_hidden()
        expect(page.locator("#digit")).to_have_text("–")
        # With the photo gone, Predict asks about the (empty) pad, not the old photo.
        page.get_by_role("button", name="Predict").click()
        wait_for_answer(page)
        expect(page.locator("#result")).to_have_attribute("data-state", "error")


# --- errors --------------------------------------------------------------------------------


class TestErrors:
    def test_empty_pad_shows_the_service_error(self, page: Page, ui_url: str, service_url: str) -> None:
        blank = _png(np.zeros((280, 280), np.uint8))
        answer = page.request.post(
            f"{service_url}/predict",
            multipart={"image": {"name": "blank.png", "mimeType": "image/png", "buffer": blank}},
        )
        assert 400 <= answer.status < 500, "the service should refuse a blank image"
        page.goto(ui_url)
        page.get_by_role("button", name="Predict").focus()
        page.keyboard.press("Enter")  # keyboard users can ask too
        wait_for_answer(page)
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text(answer.json()["error"])
        expect(alert).to_contain_text("Accepted: ")
        expect(page.locator("#digit")).to_have_text("–")

    def test_non_image_upload_shows_the_service_error(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        choose_file(page, b"this is not a picture of a digit\n", "text/plain", "notes.txt")
        wait_for_answer(page)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The service could not use this image:")
        expect(alert).to_contain_text("Accepted: ")

    def test_unreachable_service_is_explained(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        page.route(re.compile(r"/(predict|preprocess)$"), lambda route: route.abort())
        draw(page, DIGIT_STROKES[1])
        wait_for_answer(page)
        expect(page.get_by_role("alert")).to_contain_text("Could not reach the service")

    def test_server_failure_is_explained_without_markup(self, page: Page, ui_url: str) -> None:
        page.goto(ui_url)
        page.route(
            re.compile(r"/predict$"),
            lambda route: route.fulfill(status=500, content_type="text/html", body="<h1>Internal Server Error</h1>"),
        )
        draw(page, DIGIT_STROKES[1])
        wait_for_answer(page)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("HTTP 500")
        expect(alert).to_contain_text("Internal Server Error")
        expect(alert).not_to_contain_text("<h1>")
