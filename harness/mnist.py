"""MNIST's raw idx files read with numpy alone, and where they live: one rule for every room.

The data folder is `MNIST_DATA_DIR` when set (CI points it at ../shared/data), else `./data`,
the folder `make test` and `mnist data` download into. Training resolves it the same way.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = Path("data")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


def data_dir(explicit: str | Path | None = None) -> Path:
    """--data-dir, else $MNIST_DATA_DIR, else ./data."""
    if explicit:
        return Path(explicit)
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"])
    return DEFAULT_DATA_DIR


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one idx file (big-endian header, then uint8 payload), gzipped or not."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: magic {found}, expected {magic}: not an idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(raw_dir: Path, name: str) -> Path:
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"MNIST file {name}(.gz) not found in {raw_dir}; point MNIST_DATA_DIR (or --data-dir) "
        "at the folder that holds MNIST/raw, or run `make data` while online to download it into ./data"
    )


def load_mnist(root: str | Path | None = None, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from torchvision's raw layout without torch: (N, 28, 28) uint8, (N,) int64."""
    if split not in _IDX_FILES:
        raise ValueError(f"split must be one of {sorted(_IDX_FILES)}, not {split!r}")
    raw_dir = data_dir(root) / "MNIST" / "raw"
    images_name, labels_name = _IDX_FILES[split]
    images = _read_idx(_find(raw_dir, images_name), _IMAGES_MAGIC)  # (N, 28, 28) uint8
    labels = _read_idx(_find(raw_dir, labels_name), _LABELS_MAGIC).astype(np.int64)  # (N,)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"{raw_dir}: images {images.shape} do not match labels {labels.shape}")
    return images, labels
