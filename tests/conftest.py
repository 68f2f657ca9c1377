"""Fixtures shared by every test group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """MNIST root in torchvision's layout (<root>/MNIST/raw); tests never download."""
    root = Path(os.environ.get("MNIST_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.fail(f"MNIST not found under {root}/MNIST/raw; set MNIST_DATA_DIR", pytrace=False)
    return root
