"""Two instances on one host keep their own metrics: starting a second
`bentoml serve` (a canary, a test run, a benchmark) neither wipes nor joins the first one's."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.images import png_bytes
from harness.server import running_service

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.server]


def _predictions(client: httpx.Client) -> float:
    """mnist_predictions_total summed over digits, from /metrics."""
    text = client.get("/metrics").text
    return sum(float(v) for v in re.findall(r"^mnist_predictions_total\{[^}]*\}\s+(\S+)$", text, re.M))


def _predict(client: httpx.Client, n: int) -> None:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    body = png_bytes(pixels)
    for _ in range(n):
        assert client.post("/predict", content=body, headers={"content-type": "image/png"}).status_code == 200


def test_second_instance_leaves_the_first_ones_counters_alone(tmp_path: Path) -> None:
    home = {"BENTOML_HOME": str(tmp_path / "bentoml"), "MNIST_WORKERS": "2"}  # one shared home
    with running_service(env=home, log_path=tmp_path / "a.log") as url_a, httpx.Client(base_url=url_a, timeout=30) as a:
        _predict(a, 7)
        assert _predictions(a) == 7
        with (
            running_service(env=home, log_path=tmp_path / "b.log") as url_b,
            httpx.Client(base_url=url_b, timeout=30) as b,
        ):
            _predict(b, 3)
            seen = _predictions(a), _predictions(b)
            _predict(a, 2)
            later = _predictions(a), _predictions(b)
    print(
        f"\ninstance A after 7, B started and served 3: A {seen[0]:g}, B {seen[1]:g}; "
        f"A served 2 more: A {later[0]:g}, B {later[1]:g}"
    )
    assert seen == (7, 3)
    assert later == (9, 3)
