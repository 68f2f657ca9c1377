"""Reading numbers does not slip: strings of MNIST test digits through contract.number.

Floors from `python -m benchmarks.bench_numbers` on test renderings (BENCHMARKS.md, "Numbers"),
with a margin for the small sample: spaced strings of 2-8 digits read 100% there.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.number import read_number
from harness.mnist import load_mnist
from harness.numbers import sample_numbers, served_reader

pytestmark = pytest.mark.regression
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize(("kind", "floor"), [("spaced", 0.95), ("scene_ruled", 0.75)])
def test_strings_read_exactly(kind: str, floor: float, mnist_data_dir: Path) -> None:
    classify, threshold = served_reader(MODELS)
    images, labels = load_mnist(mnist_data_dir, split="test")
    ups = list(sample_numbers(images, labels, (kind,), 20, seed=0))
    read = ["".join(str(d.digit) for d in read_number(Image.open(io.BytesIO(u.data)), classify, threshold).digits)
            for u in ups]  # fmt: skip
    right = float(np.mean([r == u.label for r, u in zip(read, ups, strict=True)]))
    assert right >= floor, f"{kind}: {right:.0%} of 20 strings read exactly, under the {floor:.0%} floor"
