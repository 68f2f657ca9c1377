"""harness.uploads and harness.mnist: MNIST read without torch, and uploads that decode and still show the digit."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from harness.mnist import load_mnist
from harness.uploads import HARD, PHOTO_LIKE, RENDERINGS, render, sample_uploads

pytestmark = pytest.mark.unit

_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
}


@pytest.fixture(scope="module")
def mnist_test(mnist_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(mnist_data_dir, "test")


def _decode(data: bytes) -> Image.Image:
    """Decode as a careful server would: honour EXIF, put transparency on white paper."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    img = img.convert("RGBA")
    paper = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, img).convert("L")


def _mnist_like(grey: np.ndarray, flatten: bool = False) -> np.ndarray:
    """Rough MNIST normalisation (ink white, bounding box into 20x20, centred in 28x28).

    flatten: first average sensor noise away (box-reduce to about 96 px, then a 3x3 median) and
    divide out the light (a blur a fifth of the photo wide), for the dim, noisy hard kinds."""
    if flatten:
        img = Image.fromarray(grey).reduce(max(1, max(grey.shape) // 96)).filter(ImageFilter.MedianFilter(3))
        grey = np.asarray(img)
        light = np.asarray(img.filter(ImageFilter.GaussianBlur(max(grey.shape) / 5)), np.float32)
        grey = np.clip(np.asarray(img, np.float32) / np.maximum(light, 1.0) * 230.0, 0, 255)
    grey = grey.astype(np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = (255.0 - grey) if np.median(border) > 127 else grey
    ink = np.clip(ink - np.percentile(ink, 50), 0, None)
    ys, xs = np.nonzero(ink > 0.3 * ink.max())
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = 20.0 / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))
    out = np.zeros((28, 28), np.float32)
    out[(28 - h) // 2 : (28 - h) // 2 + h, (28 - w) // 2 : (28 - w) // 2 + w] = small
    return out


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


class TestLoadMnist:
    def test_test_split_shapes_and_types(self, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
        images, labels = mnist_test
        assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (10_000,) and labels.dtype == np.int64
        assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # MNIST's well-known first test labels
        assert np.bincount(labels).tolist()[:2] == [980, 1135]

    def test_reads_gzipped_files(self, tmp_path: Path, mnist_test: tuple) -> None:
        images, labels = mnist_test
        raw = tmp_path / "MNIST" / "raw"
        raw.mkdir(parents=True)
        head = (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28))
        (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + images[:3].tobytes()))
        head = (2049).to_bytes(4, "big") + (3).to_bytes(4, "big")
        (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(head + labels[:3].astype(np.uint8).tobytes()))
        got_images, got_labels = load_mnist(tmp_path)
        np.testing.assert_array_equal(got_images, images[:3])
        assert got_labels.tolist() == labels[:3].tolist()

    def test_missing_folder_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
            load_mnist(tmp_path)

    def test_wrong_magic_is_rejected(self, tmp_path: Path) -> None:
        raw = tmp_path / "MNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(8))
        (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(8))
        with pytest.raises(ValueError, match="magic"):
            load_mnist(tmp_path)

    def test_unknown_split(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="split"):
            load_mnist(tmp_path, "val")


class TestRender:
    @pytest.mark.parametrize("kind", RENDERINGS)
    def test_decodes_as_its_content_type(self, kind: str, mnist_test: tuple) -> None:
        images, _ = mnist_test
        rng = np.random.default_rng(1)
        for index in range(5):
            data, content_type = render(images[index], kind, rng)
            img = Image.open(io.BytesIO(data))
            assert img.format == _FORMATS[content_type], (kind, content_type, img.format)
            img.load()

    @pytest.mark.parametrize("kind", RENDERINGS)
    def test_sizes(self, kind: str, mnist_test: tuple) -> None:
        images, _ = mnist_test
        rng = np.random.default_rng(2)
        for index in range(10):
            size = Image.open(io.BytesIO(render(images[index], kind, rng)[0])).size
            if kind == "png28":
                assert size == (28, 28)
            else:
                assert min(size) >= 100 and max(size) <= 800, (kind, size)

    def test_photo_sizes_span_small_to_large(self, mnist_test: tuple) -> None:
        images, _ = mnist_test
        rng = np.random.default_rng(3)
        sides = [Image.open(io.BytesIO(render(images[i], "photo", rng)[0])).size[0] for i in range(40)]
        assert min(sides) < 400 < max(sides)

    @pytest.mark.parametrize("kind", RENDERINGS)
    def test_same_seed_same_bytes(self, kind: str, mnist_test: tuple) -> None:
        images, _ = mnist_test
        first = [render(images[i], kind, np.random.default_rng(7)) for i in range(3)]
        again = [render(images[i], kind, np.random.default_rng(7)) for i in range(3)]
        assert first == again

    @pytest.mark.parametrize("kind", PHOTO_LIKE)
    def test_different_seed_different_bytes(self, kind: str, mnist_test: tuple) -> None:
        images, _ = mnist_test
        a = render(images[0], kind, np.random.default_rng(1))[0]
        b = render(images[0], kind, np.random.default_rng(2))[0]
        assert a != b

    @pytest.mark.parametrize("kind", [k for k in RENDERINGS if k not in HARD])
    def test_still_shows_the_digit(self, kind: str, mnist_test: tuple) -> None:
        """Realistic, not adversarial: after a rough MNIST normalisation the shape survives."""
        images, _ = mnist_test
        rng = np.random.default_rng(4)
        scores = []
        for index in range(20):
            grey = np.asarray(_decode(render(images[index], kind, rng)[0]))
            scores.append(_correlation(_mnist_like(grey), _mnist_like(images[index])))
        assert min(scores) > 0.7 and np.mean(scores) > 0.85, (kind, np.round(scores, 2))

    @pytest.mark.parametrize("kind", HARD)
    def test_hard_kinds_still_resemble_the_digit(self, kind: str, mnist_test: tuple) -> None:
        """Marker and blur change the strokes by design; the rough normalisation above (median
        paper, 30% threshold) is not meant for them, so the bar is on the typical digit only."""
        images, _ = mnist_test
        rng = np.random.default_rng(4)
        scores = []
        for index in range(20):
            grey = np.asarray(_decode(render(images[index], kind, rng)[0]))
            scores.append(_correlation(_mnist_like(grey, flatten=True), _mnist_like(images[index])))
        assert np.median(scores) > 0.7, (kind, np.round(scores, 2))

    @pytest.mark.parametrize("kind", [k for k in (*PHOTO_LIKE, *HARD) if k != "canvas_rgba"])
    def test_photo_like_kinds_are_dark_ink_on_light_paper(self, kind: str, mnist_test) -> None:
        images, _ = mnist_test
        grey = np.asarray(_decode(render(images[0], kind, np.random.default_rng(5))[0]))
        assert np.median(grey) > 150 and grey.min() < 90, (kind, np.median(grey), grey.min())

    def test_canvas_export_has_a_transparent_background(self, mnist_test: tuple) -> None:
        images, _ = mnist_test
        img = Image.open(io.BytesIO(render(images[0], "canvas_rgba", np.random.default_rng(0))[0]))
        alpha = np.asarray(img)[..., 3]
        assert img.mode == "RGBA" and alpha[0, 0] == 0 and alpha.max() == 255

    def test_exif_rotated_is_upright_only_after_transpose(self, mnist_test: tuple) -> None:
        images, _ = mnist_test
        rng = np.random.default_rng(6)
        for index in range(10):
            data = render(images[index], "exif_rotated", rng)[0]
            stored = Image.open(io.BytesIO(data))
            assert stored.getexif()[0x0112] in (3, 6, 8)
            target = _mnist_like(images[index])
            upright = _correlation(_mnist_like(np.asarray(_decode(data))), target)
            raw = _correlation(_mnist_like(np.asarray(stored.convert("L"))), target)
            assert upright > 0.75 and upright > raw + 0.1, (index, upright, raw)

    def test_rejects_unknown_kind_and_bad_digit(self, mnist_test: tuple) -> None:
        images, _ = mnist_test
        with pytest.raises(ValueError, match="unknown rendering"):
            render(images[0], "svg", np.random.default_rng(0))
        with pytest.raises(ValueError, match="28, 28"):
            render(images[0].astype(np.float32), "png28", np.random.default_rng(0))


class TestSampleUploads:
    def test_fixed_set_per_kind(self, mnist_test: tuple) -> None:
        images, labels = mnist_test
        uploads = list(sample_uploads(images, labels, ("photo", "bmp"), per_kind=4, seed=3))
        assert [u.kind for u in uploads] == ["photo"] * 4 + ["bmp"] * 4
        assert all(u.label == labels[u.index] for u in uploads)
        assert len({u.index for u in uploads[:4]}) == 4
        again = list(sample_uploads(images, labels, ("photo", "bmp"), per_kind=4, seed=3))
        assert uploads == again
