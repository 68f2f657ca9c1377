"""Fixtures for checking a running deployment: what it reports, what models/ says, its answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from contract import ModelFiles, read_metadata, read_served
from harness.checks import check_batch
from harness.mnist import load_mnist
from harness.uploads import render

BATCH = 500  # images per /predict_batch request, well under MNIST_MAX_IMAGES_PER_REQUEST


@pytest.fixture(scope="session")
def client(service_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service_url, timeout=300.0) as c:
        yield c


@pytest.fixture(scope="session")
def reported(client: httpx.Client) -> dict:
    """GET /model: what the deployment says it serves."""
    resp = client.get("/model")
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="session")
def served_dir(repo_root: Path) -> Path:
    """models/<version>/ that models/served.json names: what should be deployed."""
    return repo_root / "models" / str(read_served(repo_root / "models").served)


@pytest.fixture(scope="session")
def metadata(served_dir: Path) -> dict:
    """The served version's metadata.json as written, after the contract's checks (and its sha256)."""
    read_metadata(ModelFiles.of(served_dir))
    return json.loads((served_dir / "metadata.json").read_text())


@pytest.fixture(scope="session")
def test_set(mnist_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(mnist_data_dir, "test")  # (10000, 28, 28) uint8, (10000,) int64


@pytest.fixture(scope="session")
def test_set_predictions(client: httpx.Client, test_set: tuple, reported: dict) -> np.ndarray:
    """The deployment's digit for every test image, sent as PNG uploads to /predict_batch."""
    images, _ = test_set
    rng = np.random.default_rng(0)  # png28 is not random; render() just wants one
    digits: list[int] = []
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        files = [("images", (f"{start + i}.png", *render(img, "png28", rng))) for i, img in enumerate(chunk)]
        resp = client.post("/predict_batch", files=files)
        assert resp.status_code == 200, f"/predict_batch: HTTP {resp.status_code}: {resp.text[:300]}"
        digits += check_batch(resp.json(), len(chunk), reported["version"])
    return np.asarray(digits)  # (10000,)


@pytest.fixture(scope="session")
def output_dir(repo_root: Path) -> Path:
    """Where failing checks leave their pictures (git-ignored)."""
    out = repo_root / "results" / "deployed"
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_grid(
    images: Sequence[np.ndarray], captions: Sequence[str], path: Path, title: str, cols: int = 12, limit: int = 240
) -> Path:
    """A PNG contact sheet of digits with a caption under each, to see what went wrong."""
    if len(images) > limit:
        title = f"{title} (first {limit} of {len(images)})"
        images, captions = images[:limit], captions[:limit]
    tile, cap_h, pad = 84, 16, 6
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (tile + pad) + pad, 24 + rows * (tile + cap_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), title, fill="black")
    for k, (img, caption) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(k, cols)
        x, y = pad + c * (tile + pad), 24 + r * (tile + cap_h + pad)
        small = max(img.shape[:2]) < tile  # 28x28 digits: blow up pixels, do not blur them
        thumb = ImageOps.contain(
            Image.fromarray(img).convert("RGB"),
            (tile, tile),
            Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS,
        )
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        draw.text((x, y + tile + 2), caption, fill="firebrick")
    sheet.save(path)
    return path


@pytest.fixture(scope="session")
def grid_writer(output_dir: Path) -> Callable[..., Path]:
    """write_grid into the output folder: grid_writer(name, images, captions, title)."""

    def _write(name: str, images: Sequence[np.ndarray], captions: Sequence[str], title: str) -> Path:
        return write_grid(images, captions, output_dir / f"{name}.png", title)

    return _write
