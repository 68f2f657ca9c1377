"""In-process service fixtures: BentoML's ASGI app behind Starlette's test client."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from harness.mnist import load_mnist

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx in its test client
    from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    """The service with the repo's served model, lifespan (model load, warm-up) included."""
    from service.service import MnistService

    with TestClient(MnistService.to_asgi(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def mnist_test(mnist_data_dir) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(mnist_data_dir, "test")
