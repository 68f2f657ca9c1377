"""contract.number: a handwritten number cut into digits, each framed as /predict frames one."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from contract import photo
from contract.number import Number, TooManyDigits, read_number
from harness.mnist import load_mnist
from harness.numbers import render_number, served_reader, strip

pytestmark = pytest.mark.unit
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def reader() -> tuple:  # type: ignore[type-arg]
    return served_reader(MODELS)


@pytest.fixture(scope="module")
def mnist(mnist_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(mnist_data_dir, split="test")


def on_paper(ink28: np.ndarray, scale: int = 4, margin: int = 40) -> np.ndarray:
    """A clean scan of a strip of digits: (H, W) uint8, dark ink on white."""
    h, w = ink28.shape
    big = Image.fromarray(ink28).resize((w * scale, h * scale), Image.Resampling.BILINEAR)
    paper = np.full((h * scale + 2 * margin, w * scale + 2 * margin), 255, np.uint8)
    paper[margin:-margin, margin:-margin] = 255 - np.asarray(big)
    return paper


def read(pixels: np.ndarray | Image.Image, reader: tuple, limit: int = 12) -> Number:  # type: ignore[type-arg]
    classify, threshold = reader
    return read_number(pixels, classify, threshold, limit)


def digits_of(result: Number) -> str:
    return "".join(str(d.digit) for d in result.digits)


def pick(mnist: tuple[np.ndarray, np.ndarray], label: str) -> list[np.ndarray]:
    """The first test digits with these labels (MNIST's test set starts 7, 2, 1, 0, 4, 1, 4, 9)."""
    x, y = mnist
    used: set[int] = set()
    out = []
    for c in label:
        i = next(i for i in np.flatnonzero(y == int(c)) if i not in used)
        used.add(int(i))
        out.append(x[i])
    return out


def test_spaced_digits_read_left_to_right_with_boxes(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    ink = strip(pick(mnist, "4071"), "spaced", np.random.default_rng(0))
    result = read(on_paper(ink), reader)
    assert digits_of(result) == "4071"
    assert result.number == "4071"
    xs = [d.box[0] for d in result.digits]
    assert xs == sorted(xs)
    assert all(d.box[2] > 0 and d.box[3] > 0 and d.box[0] + d.box[2] <= ink.shape[1] * 4 + 80 for d in result.digits)
    assert result.confidence == pytest.approx(np.prod([d.confidence for d in result.digits]))
    assert result.confidence <= min(d.confidence for d in result.digits)


def test_touching_digits_are_cut_where_the_classifier_is_surest(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    ink = strip(pick(mnist, "23"), "touching", np.random.default_rng(1))
    n, _ = cv2.connectedComponents((ink > 30).astype(np.uint8))
    assert n == 2  # one piece of ink: the digits do touch
    assert digits_of(read(on_paper(ink), reader)) == "23"


def test_broken_digit_is_one_digit(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    digits = pick(mnist, "29")
    broken = digits[0].copy()
    rows = np.flatnonzero((broken > 30).any(1))
    broken[rows[0] + 8 : rows[0] + 10] = 0  # a pen that skipped across the middle
    ink = strip([broken, digits[1]], "spaced", np.random.default_rng(2))
    assert digits_of(read(on_paper(ink), reader)) == "29"


def test_a_dot_between_groups_is_not_a_digit(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(4)  # "350.4": the dot small, low and apart (a comma's tail still misleads)
    data, _ = render_number(pick(mnist, "3504"), "dotted", rng)
    assert digits_of(read(Image.open(io.BytesIO(data)), reader)) == "3504"


def test_row_of_boxes_is_read_box_by_box(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    data, _ = render_number(pick(mnist, "3690"), "boxes", np.random.default_rng(4))
    assert digits_of(read(Image.open(io.BytesIO(data)), reader)) == "3690"


def test_more_digits_than_the_limit_is_the_callers_error(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    ink = strip(pick(mnist, "72104149590690"), "spaced", np.random.default_rng(5))
    with pytest.raises(TooManyDigits, match="more than"):
        read(on_paper(ink, scale=2), reader, limit=12)
    assert issubclass(TooManyDigits, ValueError)


def test_single_digit_is_framed_exactly_as_predict_frames_it(mnist: tuple, reader: tuple) -> None:  # type: ignore[type-arg]
    from harness.uploads import render

    x, _ = mnist
    seen: list[np.ndarray] = []
    classify, threshold = reader

    def spy(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(frames.copy())
        probs, scores = classify(frames)
        return probs, scores

    rng = np.random.default_rng(6)
    for i, kind in enumerate(("photo", "pen_rgb", "png28", "scene_ruled", "thick_marker")):
        data, _ = render(x[i], kind, rng)
        img = Image.open(io.BytesIO(data))
        seen.clear()
        result = read_number(img, spy, threshold)
        assert len(result.digits) == 1, kind
        np.testing.assert_array_equal(seen[-1][0], photo.to_frame(img), err_msg=kind)


def test_a_part_that_is_not_a_digit_is_reported_not_read(mnist: tuple) -> None:  # type: ignore[type-arg]
    def stub(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = np.full((len(frames), 10), 0.01, np.float32)
        probs[:, 7] = 0.91
        return probs, np.zeros(len(frames), np.float32)  # nothing looks like a digit

    ink = strip(pick(mnist, "71"), "spaced", np.random.default_rng(7))
    result = read_number(on_paper(ink), stub, 0.5)
    assert result.number == "??"
    assert [d.is_digit for d in result.digits] == [False, False]
    assert [d.digit for d in result.digits] == [7, 7]


def test_blank_upload_has_no_ink(reader: tuple) -> None:  # type: ignore[type-arg]
    from contract.framing import NoInk

    with pytest.raises(NoInk):
        read(np.full((60, 200), 255, np.uint8), reader)


def test_punctuation_is_told_by_its_place_in_the_row() -> None:
    from contract.number import _punctuation

    line, middle = 40.0, 30.0  # a row 40 px tall from y 10 to 50
    assert _punctuation(34.0, 14.0, line, middle)  # a comma with its tail, below the mid-line
    assert not _punctuation(22.0, 14.0, line, middle)  # a faint 1 across the mid-line, its ends lost
    assert _punctuation(20.0, 8.0, line, middle)  # a small blot across the mid-line
    assert not _punctuation(32.0, 30.0, line, middle)  # a digit sitting low is still a digit
    assert _punctuation(0.0, 10.0, line, None) and not _punctuation(0.0, 20.0, line, None)
