"""Fixtures shared by every test group, and the markers each test gets from its folder."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness.server
from contract import Served, write_served
from harness.mnist import data_dir
from harness.server import running_service
from harness.tiny_model import write_model_dir

REPO = Path(__file__).resolve().parents[1]
# Tests never write into the user's BentoML home (its model and bento stores): `mnist promote`
# and `bentoml build` put models there. One throwaway home per session, for every server too.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="mnist-tests-bentoml-")
atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)
TESTS = Path(__file__).resolve().parent
# tests/<folder>/... is marked <folder>: `-m unit` is every test under tests/unit, whatever the
# module itself declares (a module may add markers, e.g. slow, or a second group).
FOLDER_MARKERS = ("unit", "training", "service", "regression", "deployed", "load", "reliability", "ui", "deploy")


def _starts_a_server(item: pytest.Item) -> bool:
    """A test that asks for a served URL (service_url, detector_url, keyed_url, url...) starts a
    server through that fixture; one that starts its own is marked `server` in its module."""
    names = getattr(item, "fixturenames", ())
    return any(name == "url" or name.endswith("_url") for name in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)
        if _starts_a_server(item):
            item.add_marker("server")


class _NoServers:
    """harness.server's `subprocess` for tests not marked `server`: starting one fails loudly."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> Any:  # stands in for subprocess.Popen
        raise AssertionError("this test starts a server: mark it `server` (pytest.mark.server)")


@pytest.fixture(autouse=True)
def _servers_only_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-m "not server"` must start no server: a test that does so unmarked fails here."""
    if request.node.get_closest_marker("server") is None:
        monkeypatch.setattr(harness.server, "subprocess", _NoServers())


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


# A service whose model has a digit detector: the tiny model of harness/tiny_model.py
# (its detector scores mean ink; threshold 0.5), so these tests never depend on the real model.
# served.json also lists an older tiny version without a detector, reachable over v2.
DETECTOR_THRESHOLD = 0.5
REJECTING_THRESHOLD = 0.6  # MNIST_DIGIT_THRESHOLD of the server that refuses non-digits


@pytest.fixture(scope="session")
def detector_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder: served a tiny model with a detector, history a tiny one without."""
    root = tmp_path_factory.mktemp("detector-models")
    older = write_model_dir(root, serve=False, seed=1)
    served = write_model_dir(root, serve=False, detector=True, digit_threshold=DETECTOR_THRESHOLD)
    write_served(root, Served(served=served, history=[older]))
    return root


@pytest.fixture(scope="session")
def detector_url(detector_models: Path) -> Iterator[str]:
    """The tiny detector model served as configured by default: non-digits flagged, never refused."""
    with running_service(env={"MNIST_MODELS_DIR": str(detector_models), "MNIST_WORKERS": "1"}) as url:
        yield url


@pytest.fixture(scope="session")
def rejecting_detector_url(detector_models: Path) -> Iterator[str]:
    """The same model with MNIST_REJECT_NON_DIGITS on and MNIST_DIGIT_THRESHOLD 0.6."""
    env = {
        "MNIST_MODELS_DIR": str(detector_models),
        "MNIST_WORKERS": "1",
        "MNIST_REJECT_NON_DIGITS": "true",
        "MNIST_DIGIT_THRESHOLD": str(REJECTING_THRESHOLD),
    }
    with running_service(env=env) as url:
        yield url
