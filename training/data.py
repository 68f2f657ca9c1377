"""MNIST through torchvision, a seeded train/validation split, and on-device augmentation."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# sha256 of the uncompressed originals: what torchvision's download unpacks (it checks each
# archive's MD5 on the way) and what ../shared/data holds.
RAW_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
RAW_FILES = tuple(RAW_SHA256)
DEFAULT_DATA_DIR = Path("data")


class DataNotFoundError(RuntimeError):
    """MNIST is missing or unreadable; the message says where we looked and how to get it."""


def resolve_data_dir(data_dir: str | Path | None) -> tuple[Path, bool]:
    """--data-dir, else $MNIST_DATA_DIR, else ./data; the flag says whether it was the default."""
    if data_dir:
        return Path(data_dir), False
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"]), False
    return DEFAULT_DATA_DIR, True


def _how_to_get(root: Path) -> str:
    return (
        f"MNIST was not found or is incomplete in {root.resolve()}/MNIST/raw "
        f"(expected {', '.join(RAW_FILES)}). Point --data-dir or MNIST_DATA_DIR at a folder "
        "in torchvision's layout (<root>/MNIST/raw/...), or run with --download while online "
        "to let torchvision fetch it."
    )


def ensure_mnist(root: Path, download: bool) -> Path:
    """MNIST's four raw files in root/MNIST/raw, checked against their sha256; fetched by
    torchvision first when missing and `download` allows it. One DataNotFoundError line otherwise."""
    raw = root / "MNIST" / "raw"
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing and download:
        from torchvision.datasets import MNIST

        try:
            for train in (True, False):
                MNIST(str(root), train=train, download=True)
        except Exception as exc:  # URLError, OSError, RuntimeError (checksum) ...: all one answer
            raise DataNotFoundError(
                f"MNIST is not in {raw.resolve()} and torchvision could not download it "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Offline? Copy the four "
                f"files ({', '.join(RAW_FILES)}) there, or set MNIST_DATA_DIR to a folder that holds MNIST/raw."
            ) from None
        missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        raise DataNotFoundError(f"{_how_to_get(root)} (missing: {', '.join(missing)})")
    bad = [name for name, sha in file_checksums(root).items() if sha != RAW_SHA256[name]]
    if bad:
        raise DataNotFoundError(
            f"{raw.resolve()}: {', '.join(bad)} do not match MNIST's sha256; delete and re-fetch them"
        )
    return raw


def load_split(root: Path, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of MNIST's train or test split."""
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=train, download=download)
        images, labels = ds.data, ds.targets
    except Exception as exc:  # torchvision raises RuntimeError, OSError, URLError, ... here
        raise DataNotFoundError(f"{_how_to_get(root)} ({type(exc).__name__}: {exc})") from None
    expected = 60000 if train else 10000
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise DataNotFoundError(f"{_how_to_get(root)} (read {tuple(images.shape)} images)")
    return images, labels.long()


def file_checksums(root: Path) -> dict[str, str]:
    """sha256 of each raw file, recorded in metadata so a model names the exact data it saw."""
    sums = {}
    for name in RAW_FILES:
        path = root / "MNIST" / "raw" / name
        if path.exists():
            sums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


@dataclass
class MnistSplits:
    """Train/validation from the 60,000 training images; test only for final evaluation."""

    train_x: torch.Tensor  # (N, 28, 28) uint8
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor


def train_val_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    val_size: int,
    split_seed: int = 0,
    limit_train: int | None = None,
) -> MnistSplits:
    """A seeded held-out validation split; limit_train keeps only the first N training images."""
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if limit_train:
        train_idx = train_idx[:limit_train]
        val_idx = val_idx[: max(limit_train // 5, 100)]
    return MnistSplits(images[train_idx], labels[train_idx], images[val_idx], labels[val_idx])


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], the exported graph's input."""
    return images.unsqueeze(1).float().div_(255.0)


def random_affine_theta(
    n: int,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    shear: float = 5.0,
) -> torch.Tensor:
    """N random inverse affine maps (output -> input coordinates) for affine_grid: (N, 2, 3)."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (hi - lo) + lo

    angle = uniform(-degrees, degrees) * (math.pi / 180)
    sh = uniform(-shear, shear) * (math.pi / 180)
    s = uniform(*scale)
    tx, ty = uniform(-2 * translate, 2 * translate), uniform(-2 * translate, 2 * translate)
    # Inverse map of rotate(angle) . shear_x(sh) . scale(s).
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(sh)
    a, b = cos / s, (sin + cos * tan) / s
    c, d = -sin / s, (cos - sin * tan) / s
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def random_affine(x: torch.Tensor, generator: torch.Generator, **ranges: Any) -> torch.Tensor:
    """A different small random affine per image, on x's device in one grid_sample.

    torchvision's RandomAffine draws one transform per call; per-sample draws on the device keep
    the CPU free for the model (and the GPU fed) without DataLoader workers.
    """
    theta = random_affine_theta(x.shape[0], generator, **ranges).to(x.device, x.dtype)  # (N, 2, 3); x: (N, 1, 28, 28)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
