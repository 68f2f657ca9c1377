"""Every architecture builds, returns (N, 10) logits and counts the parameters its docs claim."""

from __future__ import annotations

import pytest
import torch

from training.models import ARCHITECTURES, ModelConfig, build_model, count_parameters

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("n", [1, 7])
def test_output_shape_and_finite(arch: str, n: int) -> None:
    model = build_model(ModelConfig(arch=arch)).eval()
    x = torch.rand(n, 1, 28, 28)  # (N, 1, 28, 28) float32 in [0, 1]
    with torch.no_grad():
        out = model(x)
    assert out.shape == (n, 10)
    assert torch.isfinite(out).all()


def test_lenet5_matches_the_paper_size() -> None:
    # LeCun et al. (1998): about 60,000 trainable parameters (ours: linear output instead of RBF).
    assert 60_000 <= count_parameters(build_model(ModelConfig(arch="lenet5"))) <= 62_000


def test_seed_small_and_deep_sizes() -> None:
    assert count_parameters(build_model(ModelConfig(arch="seed-small"))) == 8_490
    assert count_parameters(build_model(ModelConfig(arch="seed-deep"))) == 1_379_557


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="mnist-cnn"):
        build_model(ModelConfig(arch="resnet50"))


def test_config_round_trips() -> None:
    cfg = ModelConfig(arch="mnist-cnn", channels=(8, 8, 16, 16, 32))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
