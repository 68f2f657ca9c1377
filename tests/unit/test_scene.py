"""contract.scene: the digit in a photo of a scene (a sheet on a table, ruled paper, a form box)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contract import framing, photo, scene
from harness.mnist import load_mnist
from harness.uploads import SCENES, render

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def digits(mnist_data_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist(mnist_data_dir, "test")
    return images[:40], labels[:40]


def _rgb(data: bytes) -> np.ndarray:
    """An upload's pixels at the working size, as to_frame reads them: (h, w, 3) float32."""
    return photo._as_float(photo._small(Image.open(io.BytesIO(data)).convert("RGB")))


def _paper_digit(digit28: np.ndarray, size: int = 300) -> np.ndarray:
    """A plain upload: dark ink on even paper, (size, size, 3) float32."""
    big = Image.fromarray(digit28).resize((200, 200), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(big, (50, 40))
    ink = np.asarray(canvas, np.float32) / 255.0
    return np.repeat((0.92 - 0.8 * ink)[..., None], 3, axis=-1)


def test_a_plain_digit_skips_the_stage(digits) -> None:
    """A digit on even paper is framed from the ink map itself: the stage adds nothing."""
    for d in digits[0][:20]:
        rgb = _paper_digit(d)
        assert scene.looks_plain(photo.ink_map(rgb))
        assert photo.digit_ink(rgb) is not None
        np.testing.assert_array_equal(photo.digit_ink(rgb), photo.ink_map(rgb))


@pytest.mark.parametrize("kind", SCENES)
def test_scenes_are_not_plain_and_the_digit_is_chosen(digits, kind) -> None:
    """In every scene kind the ink that reaches framing is the digit's, not the scene's (the
    stage's choice, or the plain ink map where the scene left it plain); where the sheet is not
    turned, it frames like the digit alone."""
    rng = np.random.default_rng(3)
    agree = []
    for d in digits[0][:6]:
        rgb = _rgb(render(d, kind, rng)[0])
        kept = photo.digit_ink(rgb)
        rows, cols = np.nonzero(framing.ink_mask(kept, framing.INK_THRESHOLD * framing.peak(kept)))
        share = 0.6 if kind == "scene_box_row" else 0.3  # a box of a row is mostly its digit
        assert np.ptp(rows) * np.ptp(cols) < share * kept.size, kind
        alone = framing.frame(photo.ink_map(_paper_digit(d)))
        agree.append(np.corrcoef(framing.frame(kept).ravel(), alone.ravel())[0, 1])
    if kind not in ("scene_table", "scene_keystone"):  # those turn the sheet, and the digit with it
        assert np.median(agree) > 0.7, (kind, agree)


def test_ruled_lines_go_and_crossing_strokes_stay() -> None:
    """Printed lines across the page are taken out; a stroke that crosses one stays whole."""
    mask = np.zeros((200, 300), np.uint8)
    mask[40::30, :] = 1  # ruled lines, 1 px, every 30 px
    mask[20:180, 150:156] = 1  # a 6 px vertical stroke crossing five of them
    out = scene._without_lines(mask)
    assert out[40::30, :100].sum() == 0 and out[40::30, 200:].sum() == 0
    assert out[20:180, 150:156].all()


def test_the_stroke_is_chosen_over_specks_and_cut_pieces() -> None:
    """Pieces at the picture's edge and specks are dropped; a broken stroke is one digit."""
    grey = np.full((240, 320), 0.9, np.float32)
    grey[60:110, 150:158] = 0.1  # upper half of a stroke
    grey[114:170, 150:158] = 0.1  # lower half, after a small break
    grey[0:40, 0:6] = 0.1  # a piece cut off by the edge
    grey[200:202, 60:62] = 0.1  # a speck
    found = scene.find_digit(grey)
    assert found is not None
    x, y, w, h = found.box
    assert (x, y) == (150, 60) and (w, h) == (8, 110)
    assert found.ink[:40, :6].max() == 0 and found.ink[200:202, 60:62].max() == 0


def test_a_scene_without_a_digit_frames_or_refuses(digits) -> None:
    """A sheet on a table with nothing written on it: NoInk or some frame, never an error."""
    rng = np.random.default_rng(0)
    blank = np.zeros((28, 28), np.uint8)
    for kind in ("scene_table", "scene_ruled", "scene_form_box", "scene_whiteboard"):
        data = render(blank, kind, rng)[0]
        try:
            out = photo.to_frame(Image.open(io.BytesIO(data)))
        except framing.NoInk:
            continue
        assert out.shape == (28, 28) and np.isfinite(out).all()


def test_kept_region_draws_the_digits_box(digits) -> None:
    rng = np.random.default_rng(1)
    data = render(digits[0][0], "scene_table", rng)[0]
    view = photo.kept_region(Image.open(io.BytesIO(data)))
    assert view.dtype == np.uint8 and view.ndim == 3 and max(view.shape[:2]) <= photo.WORK_LONG_SIDE
    red = (view[..., 0] == 220) & (view[..., 1] == 0) & (view[..., 2] == 0)
    assert red.sum() > 20


def test_a_turned_sheet_is_measured_by_its_own_edges() -> None:
    """The sheet's turn comes from two of its edges that agree; the picture's edges and a lone
    straight edge (a shadow's) say nothing."""
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    corners = np.array([[-100, -140], [100, -140], [100, 140], [-100, 140]]) @ np.array([[c, s], [-s, c]])
    sheet = np.round(corners + np.array([200, 200])).astype(np.int32)  # wholly inside a 400x400 picture
    assert abs(abs(scene._turn(sheet, 400, 400)) - 20) < 1
    lit = np.array([[0, 0], [399, 0], [399, 150], [0, 260]], np.int32)  # a shadow's edge, picture edges
    assert scene._turn(lit, 400, 400) == 0.0


def test_far_specks_of_noise_leave_a_digit_plain_and_out_of_the_crop(digits) -> None:
    """A few tiny clusters of noise far from the digit do not make it a scene, and framing crops
    to the digit alone: the same frame as without them; the plain check hands framing the mask
    and peak it made, and the frame is the one framing makes on its own."""
    for d in digits[0][:10]:
        rgb = _paper_digit(d)
        clean = framing.frame(photo.ink_map(rgb))
        noisy = rgb.copy()
        noisy[5:7, 280:282] = 0.3  # two 2x2 clusters of dark noise near the picture's edge
        noisy[270:272, 10:12] = 0.3
        ink = photo.ink_map(noisy)
        top = framing.peak(ink)
        mask = framing.crop_mask(ink, top)
        plain = scene.plain_mask(ink, mask, top)
        assert plain is not None and plain.sum() < mask.sum()
        np.testing.assert_allclose(framing.frame(ink, plain, top), clean, atol=0.02)
        np.testing.assert_array_equal(framing.frame(ink, mask, top), framing.frame(ink))
