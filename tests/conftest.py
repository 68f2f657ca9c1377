"""Fixtures shared by every test group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.mnist import data_dir
from harness.server import running_service

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """MNIST root in torchvision's layout (<root>/MNIST/raw); tests never download."""
    root = data_dir()
    if not (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.fail(
            f"MNIST not found under {root.resolve()}/MNIST/raw: set MNIST_DATA_DIR to a folder "
            "holding MNIST/raw, or run `make data` while online",
            pytrace=False,
        )
    return root


@pytest.fixture(scope="session")
def service_url() -> Iterator[str]:
    """Base URL of the service under test: MNIST_SERVICE_URL, else one local `bentoml serve`."""
    if url := os.environ.get("MNIST_SERVICE_URL"):
        yield url.rstrip("/")
        return
    with running_service() as url:
        yield url
