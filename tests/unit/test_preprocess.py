"""service.images.preprocess: photos and drawings -> the 28x28 frame MNIST was made with."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from contract import framing, photo
from harness.mnist import load_mnist
from service.errors import BadInput
from service.images import preprocess as pp

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def digits(mnist_data_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist(mnist_data_dir, "test")
    return images[:50], labels[:50]


def _big(digit28: np.ndarray, size: int = 300, fill: float = 0.7) -> np.ndarray:
    """An MNIST digit scaled up into a bigger black canvas: (size, size) float32, white ink."""
    frame = int(size * fill)
    big = Image.fromarray(digit28).resize((frame, frame), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(big, ((size - frame) // 2, (size - frame) // 3))
    return np.asarray(canvas, np.float32) / 255.0


def _bbox(img: np.ndarray, thr: float = 0.1) -> tuple[int, int]:
    rows, cols = np.flatnonzero((img > thr).any(1)), np.flatnonzero((img > thr).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images: 1.0 is identical up to scale."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


class TestAlreadyMnist:
    def test_mnist_digit_passes_through_untouched(self, digits) -> None:
        for digit in digits[0]:
            out = pp.to_mnist(Image.fromarray(digit))
            np.testing.assert_array_equal(out, digit.astype(np.float32) / 255.0)

    def test_inverted_mnist_digit_is_inverted_back_without_resampling(self, digits) -> None:
        digit = digits[0][0]
        out = pp.to_mnist(Image.fromarray(255 - digit))
        np.testing.assert_allclose(out, digit / 255.0, atol=1e-6)

    def test_off_centre_28x28_is_reframed(self, digits) -> None:
        shifted = np.roll(digits[0][0], (6, -5), axis=(0, 1))
        out = pp.to_mnist(Image.fromarray(shifted))
        cy, cx = pp.centre_of_mass(out)
        assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


class TestFraming:
    def test_big_digit_is_fitted_into_20x20_and_centred_by_mass(self, digits) -> None:
        for digit in digits[0][:10]:
            out = pp.to_mnist(Image.fromarray((_big(digit) * 255).astype(np.uint8)))
            assert out.shape == (28, 28) and out.dtype == np.float32
            assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
            assert max(_bbox(out)) in (19, 20, 21)
            cy, cx = pp.centre_of_mass(out)
            assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75
            assert _agreement(out, digit / 255.0) > 0.8

    def test_wide_digit_keeps_its_aspect_ratio(self) -> None:
        bar = np.zeros((200, 300), np.uint8)
        bar[90:110, 30:270] = 255  # a 240 x 20 stroke: 12:1
        out = pp.to_mnist(Image.fromarray(bar))
        h, w = _bbox(out, 0.3)
        assert w == 20 and h <= 3

    def test_place_keeps_a_lopsided_digit_inside_the_frame(self) -> None:
        digit = np.zeros((20, 20), np.float32)
        digit[:, :2] = 1.0  # all mass at the left edge
        out = pp.place(digit)
        assert out.sum() == pytest.approx(digit.sum())

    def test_tiny_digit_is_scaled_up(self, digits) -> None:
        small = Image.fromarray(digits[0][1]).resize((10, 10), Image.Resampling.BOX)
        canvas = Image.new("L", (64, 64), 0)
        canvas.paste(small, (40, 5))
        out = pp.to_mnist(canvas)
        assert max(_bbox(out)) >= 19


class TestPhotos:
    def test_dark_ink_on_paper_reads_like_white_on_black(self, digits) -> None:
        digit = digits[0][2]
        paper = 1.0 - 0.85 * _big(digit)  # dark ink on white paper
        out = pp.to_mnist(Image.fromarray((paper * 255).astype(np.uint8)))
        assert _agreement(out, pp.to_mnist(Image.fromarray((_big(digit) * 255).astype(np.uint8)))) > 0.95

    def test_uneven_lighting_does_not_become_ink(self, digits) -> None:
        digit = digits[0][3]
        ink = _big(digit)
        ramp = np.linspace(0.55, 1.0, ink.shape[1], dtype=np.float32)[None, :]  # lamp on the right
        photo = (0.95 - 0.8 * ink) * ramp
        out = pp.to_mnist(Image.fromarray((photo * 255).astype(np.uint8)))
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.9

    @pytest.mark.parametrize("noise", [4.0, 8.0])
    def test_a_faint_digit_in_a_noisy_photo_is_framed_not_the_noise(self, digits, noise) -> None:
        """Pencil on a noisy phone photo with a vignette: lone noise pixels at the edges once
        passed for ink and the whole photo was framed, leaving a small digit in a grey box."""
        digit = digits[0][1]  # a 2
        ink = _big(digit, size=160, fill=0.5)
        yy, xx = np.mgrid[0:160, 0:160] / 160 - 0.5
        light = 1.0 - 0.5 * (xx**2 + yy**2)  # darker corners
        photo = ((0.9 - 0.45 * ink) * light)[..., None] * np.array([1.0, 0.97, 0.92])  # pencil, cream paper
        photo = photo * 255 + np.random.default_rng(0).normal(0, noise, photo.shape)
        out = pp.to_mnist(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGB"))
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert max(_bbox(out, 0.5)) >= 18  # the digit fills the 20x20 box, not a corner of it
        assert _agreement(out, reference) > 0.85

    @pytest.mark.parametrize("pen", [(20, 40, 160), (170, 20, 30), (230, 200, 20)])
    def test_coloured_pen_on_white(self, digits, pen) -> None:
        ink = _big(digits[0][4])[..., None]
        rgb = 255 * (1 - ink) + np.asarray(pen, np.float32) * ink
        out = pp.to_mnist(Image.fromarray(rgb.astype(np.uint8), "RGB"))
        reference = pp.to_mnist(Image.fromarray((ink[..., 0] * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.9

    @pytest.mark.parametrize("stroke", [0, 255])
    def test_strokes_on_a_transparent_canvas(self, digits, stroke) -> None:
        ink = _big(digits[0][5])
        rgba = np.zeros((*ink.shape, 4), np.uint8)
        rgba[..., :3] = stroke  # black (or white) strokes; transparent pixels are (0, 0, 0, 0)
        rgba[..., 3] = (ink * 255).astype(np.uint8)
        out = pp.to_mnist(Image.fromarray(rgba, "RGBA"))
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.95

    def test_palette_image(self, digits) -> None:
        ink = _big(digits[0][6])
        paper = Image.fromarray(((1 - 0.9 * ink) * 255).astype(np.uint8)).convert("RGB")
        out = pp.to_mnist(paper.quantize(colors=4))
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.9

    def test_sixteen_bit_greyscale(self, digits) -> None:
        ink = _big(digits[0][7])
        img = Image.fromarray((ink * 65535).astype(np.uint16))
        out = pp.to_mnist(img)
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.95


class TestNoInk:
    @pytest.mark.parametrize("level", [0, 128, 255])
    def test_blank_image_is_refused(self, level) -> None:
        with pytest.raises(BadInput) as info:
            pp.to_mnist(Image.new("L", (100, 80), level))
        assert info.value.status == 422 and "no ink" in info.value.error

    def test_blank_28x28_is_refused(self) -> None:
        with pytest.raises(BadInput):
            pp.to_mnist(Image.new("L", (28, 28), 0))

    def test_noise_alone_is_not_ink(self) -> None:
        rng = np.random.default_rng(0)
        paper = np.clip(rng.normal(230, 2, (200, 200)), 0, 255).astype(np.uint8)
        with pytest.raises(BadInput):
            pp.to_mnist(Image.fromarray(paper))

    def test_fully_transparent_canvas_is_refused(self) -> None:
        with pytest.raises(BadInput):
            pp.to_mnist(Image.new("RGBA", (280, 280), (0, 0, 0, 0)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 60), (60, 1), (2, 2), (3, 400), (28, 28), (29, 27)])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_odd_sizes_give_a_frame_or_a_4xx(shape, mode) -> None:
    rng = np.random.default_rng(sum(shape))
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    img = Image.fromarray(rng.integers(0, 256, (*shape, *channels), np.uint8), mode)
    try:
        out = pp.to_mnist(img)
    except BadInput as exc:
        assert exc.status == 422
    else:
        assert out.shape == (28, 28) and np.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0


class TestBatch:
    """to_mnist_many: a /predict_batch's uploads at once, the same pixels as one by one."""

    def test_batch_decides_like_one_image_on_every_mnist_test_digit(self, mnist_data_dir) -> None:
        images, _ = load_mnist(mnist_data_dir, "test")
        # as sent, inverted (dark on light), shifted off-centre, and blown up past 22 px
        shifted = np.roll(images[:300], (5, -4), axis=(1, 2))
        big = np.stack([np.asarray(Image.fromarray(d).resize((40, 40)))[6:34, 6:34] for d in images[:300]])
        variants = np.concatenate([images, 255 - images[:300], shifted, big])
        grey = variants.astype(np.float32) / 255.0
        frames, status = pp.mnist_frames(grey)
        for i, pixels in enumerate(grey):
            one = photo.already_mnist(pixels[..., None])
            assert (status[i] == pp.READY) == (one is not None), f"variant {i}"
            if one is not None:
                np.testing.assert_array_equal(frames[i], one)
        assert (status == pp.READY).sum() > 10_000 and (status == pp.REFRAME).sum() > 300

    def test_mixed_batch_equals_one_call_per_image(self, digits) -> None:
        rgb = np.repeat(_big(digits[0][1])[..., None], 3, axis=-1)
        batch = [Image.fromarray(d) for d in digits[0][:5]] + [
            Image.fromarray((rgb * 255).astype(np.uint8), "RGB"),
            Image.fromarray(255 - digits[0][6]),
            Image.fromarray(np.roll(digits[0][7], 7, axis=1)),
            # decode's uint8 arrays (plain PNGs): grey as sent, grey off-centre, RGB
            digits[0][8],
            np.roll(digits[0][9], 7, axis=0),
            (rgb * 255).astype(np.uint8),
        ]
        out = pp.to_mnist_many(batch)
        assert out.shape == (11, 28, 28) and out.dtype == np.float32
        for i, img in enumerate(batch):
            np.testing.assert_array_equal(out[i], pp.to_mnist(img))

    def test_a_blank_image_is_named_by_its_position(self, digits) -> None:
        batch = [Image.fromarray(digits[0][0]), Image.new("L", (28, 28), 0)]
        with pytest.raises(BadInput, match=r"images\[1\]: no ink") as info:
            pp.to_mnist_many(batch)
        assert info.value.status == 422


class TestSolidInk:
    """The paper estimate must not eat into thick strokes, however much of the image they fill."""

    @staticmethod
    def _solid_disc(size: int, fill: float, light: float) -> np.ndarray:
        """A filled dark disc whose diameter is `fill` of the image, under a lamp's ramp: (size, size) uint8."""
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (fill * size / 2) ** 2
        ramp = 1.0 - light * xx / size  # the lamp on the left
        return ((np.where(disc, 0.1, 0.9) * ramp) * 255).astype(np.uint8)

    @pytest.mark.parametrize("fill", [0.3, 0.5, 0.7, 0.9])
    @pytest.mark.parametrize("light", [0.0, 0.3])
    def test_a_filled_disc_stays_filled(self, fill: float, light: float) -> None:
        out = pp.to_mnist(Image.fromarray(self._solid_disc(300, fill, light)))
        inside = out[11:17, 11:17]  # the disc's centre in the frame
        assert inside.min() > 0.8, f"hollowed: centre {inside.min():.2f} at fill {fill}"

    @pytest.mark.parametrize("fill", [0.5, 0.9])
    def test_a_marker_stroke_keeps_its_width(self, fill: float) -> None:
        """A thick bar (a marker's 1) as wide as a quarter of the image reaches the model solid: one
        run of full ink across, at least MNIST's pen wide (thinned to it, not hollowed to two edges)."""
        size = 240
        img = np.full((size, size), 230, np.uint8)
        h, w = int(size * fill), int(size * fill * 0.35)
        top, left = (size - h) // 2, (size - w) // 2
        img[top : top + h, left : left + w] = 30
        out = pp.to_mnist(Image.fromarray(img))
        solid = np.flatnonzero(out[14] > 0.8)
        assert len(solid) >= 3, np.round(out[14], 2)
        assert solid[-1] - solid[0] + 1 == len(solid), np.round(out[14], 2)  # no hollow inside
        assert out[14, 13:15].min() > 0.8

    def test_uneven_light_with_a_marker_digit(self, digits) -> None:
        """Thickened MNIST digit under a strong vignette: ink solid, paper clean."""
        thick = Image.fromarray(digits[0][0]).resize((112, 112), Image.Resampling.BICUBIC)
        thick = thick.filter(ImageFilter.MaxFilter(9)).resize((300, 300), Image.Resampling.BICUBIC)
        ink = np.asarray(thick, np.float32) / 255.0
        yy, xx = np.mgrid[0:300, 0:300].astype(np.float32) / 299 - 0.5
        light = 1.0 - 0.4 * (xx**2 + yy**2) * 2
        photo = (0.92 - 0.8 * ink) * light
        out = pp.to_mnist(Image.fromarray((photo * 255).astype(np.uint8)))
        reference = pp.to_mnist(Image.fromarray((ink * 255).astype(np.uint8)))
        assert _agreement(out, reference) > 0.95

    def test_a_felt_marker_digit_is_thinned_to_mnists_pen(self, digits) -> None:
        """A digit written with a marker 3x MNIST's pen reaches the model about as bold as MNIST's boldest."""
        widths = []
        for digit in digits[0][:10]:
            big = Image.fromarray(digit).resize((300, 300), Image.Resampling.BICUBIC).filter(ImageFilter.MaxFilter(31))
            on_paper = 255 - np.asarray(big.filter(ImageFilter.GaussianBlur(1.5)))  # dark marker on white paper
            bold = framing.stroke_width(np.asarray(big, np.float32) / 255.0) * 28 / 300  # in MNIST frame px
            assert bold > framing.STROKE_MAX  # the test draws what it means to
            widths.append(framing.stroke_width(pp.to_mnist(Image.fromarray(on_paper.astype(np.uint8)))))
            assert widths[-1] < bold
        assert np.median(widths) <= framing.STROKE_MAX, widths

    def test_mnist_weight_strokes_are_left_alone(self, digits) -> None:
        """Thinning touches only ink wider than MNIST's widest 1%: a digit drawn big in MNIST's own pen
        is framed exactly as without it."""
        for digit in digits[0][:20]:
            crop = np.asarray(Image.fromarray(digit).resize((200, 200), Image.Resampling.BILINEAR), np.float32) / 255
            assert framing.thin(crop) is crop

    def test_erosion_is_a_square_min_filter_with_paper_beyond_the_edges(self) -> None:
        a = np.random.default_rng(0).random((13, 17)).astype(np.float32)
        padded = np.pad(a, 2)
        expected = np.array([[padded[r : r + 5, c : c + 5].min() for c in range(17)] for r in range(13)])
        np.testing.assert_array_equal(framing.erode(a, 2), expected)
