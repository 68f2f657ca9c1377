"""service.images.decode: bytes -> an upright image, or a 4xx that says why not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from service.errors import BadInput
from service.images.decode import open_image

pytestmark = pytest.mark.unit

LIMIT = 1_000_000


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _open(data: bytes, max_pixels: int = LIMIT) -> Image.Image:
    return open_image(data, max_pixels=max_pixels, accepted="an image")


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("PNG", "L"),
        ("PNG", "RGBA"),
        ("JPEG", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("WEBP", "RGB"),
        ("TIFF", "L"),
        ("PNG", "1"),
        ("PNG", "P"),
    ],
)
def test_supported_formats_decode(fmt: str, mode: str) -> None:
    img = Image.new(mode, (40, 30))
    out = _open(_encode(img, fmt))
    assert out.size == (40, 30)


def _rotated_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the viewer sees portrait
    return exif.tobytes()


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"exif": _rotated_exif()}),
        ("PNG", {"exif": _rotated_exif()}),
        ("WEBP", {"exif": _rotated_exif()}),
        ("TIFF", {"tiffinfo": {0x0112: 6}}),
    ],
)
def test_exif_orientation_is_applied(fmt: str, params: dict) -> None:
    img = Image.new("RGB", (60, 20), "white")  # stored landscape
    out = _open(_encode(img, fmt, **params))
    assert out.size == (20, 60)


def test_xmp_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 20), "white")
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description tiff:Orientation="8"/>'
    out = _open(_encode(img, "JPEG", xmp=xmp + b"</rdf:RDF></x:xmpmeta>"))
    assert out.size == (20, 60)


def test_camera_jpeg_with_several_pictures_decodes() -> None:
    """Phones write JPEGs with an MP extension, which Pillow opens as format MPO: a JPEG to us."""
    first, second = Image.new("RGB", (40, 30), "white"), Image.new("RGB", (40, 30), "black")
    out = _open(_encode(first, "MPO", save_all=True, append_images=[second]))
    assert out.size == (40, 30) and out.getpixel((0, 0)) == (255, 255, 255)


def test_big_jpeg_is_decoded_at_reduced_size() -> None:
    big = Image.new("RGB", (4000, 3000), "white")
    out = _open(_encode(big, "JPEG"), max_pixels=20_000_000)
    assert max(out.size) < 4000 and max(out.size) >= 500


class TestRefused:
    def _refused(self, data: bytes, max_pixels: int = LIMIT) -> BadInput:
        with pytest.raises(BadInput) as info:
            _open(data, max_pixels)
        assert info.value.accepted == "an image"
        return info.value

    def test_empty(self) -> None:
        assert "empty" in self._refused(b"").error

    def test_not_an_image(self) -> None:
        exc = self._refused(b"%PDF-1.4 definitely not pixels" * 10)
        assert exc.status == 400 and "not an image" in exc.error

    def test_truncated_png(self) -> None:
        data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), "PNG")
        exc = self._refused(data[: len(data) // 2])
        assert exc.status == 400 and "truncated" in exc.error

    def test_truncated_jpeg(self) -> None:
        rng = np.random.default_rng(1)
        data = _encode(Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
        exc = self._refused(data[: len(data) // 3])
        assert exc.status == 400

    def test_decompression_bomb_is_refused_from_its_header(self) -> None:
        bomb = _encode(Image.new("1", (12_000, 12_000)), "PNG")  # ~20 kB file, 144 Mpx
        assert len(bomb) < 100_000
        exc = self._refused(bomb, max_pixels=40_000_000)
        assert exc.status == 413 and "pixel limit" in exc.error

    def test_unsupported_format(self) -> None:
        exc = self._refused(_encode(Image.new("RGB", (32, 32)), "ICO"))
        assert exc.status == 415 and "ICO" in exc.error


def test_mangled_images_are_refused_or_read_never_crash() -> None:
    """Seeded fuzz: flipped, cut and spliced bytes of every format give an image or a BadInput."""
    from service.images.frames import Budget, read_frames

    rng = np.random.default_rng(42)
    base = rng.integers(0, 255, (40, 30, 3), np.uint8)
    seeds = [_encode(Image.fromarray(base), fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")]
    budget = Budget(1_000_000, 1_000_000, deadline=float("inf"))
    outcomes = {"read": 0, "refused": 0}
    for i in range(300):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        try:
            out = read_frames([bytes(data)], budget, "an image")
            assert out.shape == (1, 28, 28)
            outcomes["read"] += 1
        except BadInput as exc:
            assert 400 <= exc.status < 500
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0


class TestPlainPngFastPath:
    """decode() reads plain PNGs with libspng: the same pixels as Pillow, else Pillow decides."""

    @staticmethod
    def _both(data: bytes) -> tuple[object, object]:
        from service.images.decode import decode

        return decode(data, max_pixels=LIMIT, accepted="an image"), _open(data)

    def test_every_mnist_test_digit_decodes_to_pillows_pixels(self, mnist_data_dir) -> None:
        from harness.mnist import load_mnist
        from service.images.decode import decode

        images, _ = load_mnist(mnist_data_dir, "test")
        for i, digit in enumerate(images):
            data = _encode(Image.fromarray(digit), "PNG")
            fast = decode(data, max_pixels=LIMIT, accepted="")
            assert isinstance(fast, np.ndarray), f"digit {i} missed the fast path"
            np.testing.assert_array_equal(fast, digit)

    @pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
    @pytest.mark.parametrize("size", [(28, 28), (61, 37), (280, 280)])
    def test_plain_pngs_give_the_same_mnist_frame_as_pillow(self, mode: str, size: tuple) -> None:
        from service.images.preprocess import to_mnist

        rng = np.random.default_rng(len(mode) * size[0])
        channels = len(mode)
        pixels = np.zeros((size[1], size[0], channels), np.uint8)
        if mode != "RGBA":
            pixels[:] = 255  # paper
        h, w = size[1], size[0]
        pixels[h // 4 : 3 * h // 4, w // 3 : w // 3 + max(2, w // 8), :] = rng.integers(
            0, 60, (1, 1, channels), np.uint8
        )
        if mode == "RGBA":  # strokes are the only opaque pixels
            pixels[..., -1] = np.where(pixels[..., 0] > 0, 255, 0).astype(np.uint8)
            pixels[h // 4 : 3 * h // 4, w // 3 : w // 3 + max(2, w // 8), -1] = 255
        img = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
        info = PngImagePlugin.PngInfo()
        info.add(b"pHYs", b"\x00\x00\x0b\x13\x00\x00\x0b\x13\x01")  # 72 dpi: still plain
        for data in (_encode(img, "PNG"), _encode(img, "PNG", pnginfo=info)):
            fast, pillow = self._both(data)
            assert isinstance(fast, np.ndarray)
            np.testing.assert_array_equal(fast, np.asarray(pillow))
            np.testing.assert_array_equal(to_mnist(fast), to_mnist(pillow))

    @pytest.mark.parametrize(
        ("why", "mode", "params"),
        [
            ("palette", "P", {}),
            ("1-bit", "1", {}),
            ("16-bit", "I;16", {}),
            ("grey+alpha", "LA", {}),
            ("orientation", "RGB", {"exif": _rotated_exif()}),
            ("transparent grey key", "L", {"transparency": 0}),
            ("text chunk", "L", {"pnginfo": "text"}),
        ],
    )
    def test_other_pngs_go_to_pillow(self, why: str, mode: str, params: dict) -> None:
        if params.get("pnginfo") == "text":
            params = {"pnginfo": PngImagePlugin.PngInfo()}
            params["pnginfo"].add_text("Software", "an editor")
        fast, pillow = self._both(_encode(Image.new(mode, (30, 20)), "PNG", **params))
        assert isinstance(fast, Image.Image), why
        assert fast.size == pillow.size and fast.mode == pillow.mode

    def test_interlaced_is_not_plain(self) -> None:
        from service.images.decode import _plain_png

        data = bytearray(_encode(Image.new("L", (30, 20)), "PNG"))
        assert _plain_png(bytes(data)) == 30 * 20
        data[28] = 1  # IHDR's interlace method: Adam7
        assert _plain_png(bytes(data)) is None

    def test_damaged_pngs_get_pillows_verdict(self) -> None:
        from service.images.decode import decode

        def outcome(read, data: bytes) -> tuple:
            try:
                return ("read", np.asarray(read(data, max_pixels=LIMIT, accepted="an image")).tolist())
            except BadInput as exc:
                return ("refused", exc.status, exc.error)

        rng = np.random.default_rng(3)
        data = _encode(Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8)), "PNG")
        bad_crc = bytearray(data)
        bad_crc[-13] ^= 0xFF  # the IDAT checksum, which neither decoder checks: both must read it alike
        damaged = {
            "cut, then IEND": data[: len(data) // 2] + data[-12:],
            "checksum and IEND cut": data[:-20],
            "IDAT checksum wrong": bytes(bad_crc),
        }
        verdicts = set()
        for what, bad in damaged.items():
            fast, pillow = outcome(decode, bad), outcome(open_image, bad)
            assert fast == pillow, what
            verdicts.add(fast[0])
        assert verdicts == {"read", "refused"}

    def test_a_bomb_is_refused_before_libspng_sees_it(self) -> None:
        from service.images.decode import decode

        bomb = _encode(Image.new("L", (5_000, 5_000)), "PNG")
        with pytest.raises(BadInput) as info:
            decode(bomb, max_pixels=LIMIT, accepted="an image")
        assert info.value.status == 413 and "pixel limit" in info.value.error
