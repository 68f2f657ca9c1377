"""Named MNIST architectures: plain nn.Modules that take pixels in [0, 1] and return logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

# MNIST training-set statistics; normalisation lives inside every model so it travels with the weights.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to rebuild a model: stored in every checkpoint and metadata.json."""

    arch: str = "mnist-cnn"
    channels: tuple[int, ...] = (16, 16, 32, 48, 64)  # mnist-cnn only
    dropout: float = 0.1  # mnist-cnn only

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


class Normalize(nn.Module):
    """(x - mean) / std with MNIST's statistics, so exported graphs take raw [0, 1] pixels."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsample(nn.Module):
    """LeNet-5's S-layers: 2x2 sum times a trainable coefficient plus a trainable bias, per map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.full((1, channels, 1, 1), 0.25))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * 4.0 * self.coef + self.bias


# Table I of LeCun et al. (1998): which of S2's 6 maps each of C3's 16 maps sees.
_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class SparseC3(nn.Conv2d):
    """C3 with the paper's partial connection table (a fixed mask on the weights)."""

    mask: torch.Tensor  # (16, 6, 1, 1) of 0 and 1, a buffer

    def __init__(self) -> None:
        super().__init__(6, 16, kernel_size=5)
        mask = torch.zeros(16, 6, 1, 1)
        for out_map, in_maps in enumerate(_C3_TABLE):
            mask[out_map, list(in_maps)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al., 1998): 32x32 input, C1-S2-C3-S4-C5-F6, sparse C3, scaled tanh.

    The paper's RBF output layer over fixed bitmaps is replaced by a linear layer (logits), as in
    every modern reproduction; everything else follows the paper.
    """

    def __init__(self) -> None:
        super().__init__(
            Normalize(),
            nn.ZeroPad2d(2),  # (N, 1, 32, 32): the paper's 28x28 digit centred in a 32x32 field
            nn.Conv2d(1, 6, 5), ScaledTanh(),  # C1 (N, 6, 28, 28)
            Subsample(6), ScaledTanh(),  # S2 (N, 6, 14, 14)
            SparseC3(), ScaledTanh(),  # C3 (N, 16, 10, 10)
            Subsample(16), ScaledTanh(),  # S4 (N, 16, 5, 5)
            nn.Conv2d(16, 120, 5), ScaledTanh(),  # C5 (N, 120, 1, 1)
            nn.Flatten(),
            nn.Linear(120, 84), ScaledTanh(),  # F6
            nn.Linear(84, 10),  # (N, 10) logits
        )  # fmt: skip


class SeedSmall(nn.Sequential):
    """The seed notebook's small net: conv5(10) -> pool -> relu -> conv5(20) -> pool -> relu -> fc."""

    def __init__(self) -> None:
        super().__init__(
            Normalize(),
            nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),  # (N, 10, 12, 12)
            nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU(),  # (N, 20, 4, 4)
            nn.Flatten(),
            nn.Linear(320, 10),
        )  # fmt: skip


class SeedDeep(nn.Sequential):
    """The seed notebook's deep net: three 3x3 convs (32, 64, 128), 2048 -> 625 -> 10."""

    def __init__(self) -> None:
        super().__init__(
            Normalize(),
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, 7, 7)
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),  # (N, 128, 4, 4)
            nn.Flatten(),
            nn.Linear(2048, 625), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(625, 10),
        )  # fmt: skip


def _conv_bn(cin: int, cout: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class MnistCNN(nn.Sequential):
    """Our default: five BN conv layers, two per stage at 14x14 and 7x7, global-average-pool head.

    Depth is spent where the feature maps are small, widths are multiples of 16 (onnxruntime's
    blocked convolution kernels run them best), BatchNorm folds into the convolutions at inference,
    and the global pool replaces seed-deep's 2048x625 layer: about 3.5M multiply-adds and 50k
    parameters against seed-deep's 8.7M and 1.4M.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 16, 32, 48, 64), dropout: float = 0.1) -> None:
        c1, c2, c3, c4, c5 = channels
        super().__init__(
            Normalize(),
            *_conv_bn(1, c1), nn.MaxPool2d(2),  # (N, c1, 14, 14)
            *_conv_bn(c1, c2), *_conv_bn(c2, c3), nn.MaxPool2d(2),  # (N, c3, 7, 7)
            *_conv_bn(c3, c4), *_conv_bn(c4, c5),  # (N, c5, 7, 7)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, c5)
            nn.Dropout(dropout),
            nn.Linear(c5, 10),  # (N, 10) logits
        )  # fmt: skip


ARCHITECTURES: dict[str, str] = {
    "lenet5": "LeCun et al. (1998) LeNet-5",
    "seed-small": "seed notebook: 2 conv (10, 20) + 320->10",
    "seed-deep": "seed notebook: 3 conv (32, 64, 128) + 2048->625->10",
    "mnist-cnn": "our default: 5 BN conv layers (16, 16, 32, 48, 64), global-average-pool head",
}


def build_model(config: ModelConfig) -> nn.Module:
    """Construct the named architecture; raises ValueError naming the known ones."""
    if config.arch == "lenet5":
        return LeNet5()
    if config.arch == "seed-small":
        return SeedSmall()
    if config.arch == "seed-deep":
        return SeedDeep()
    if config.arch == "mnist-cnn":
        return MnistCNN(config.channels, config.dropout)
    raise ValueError(f"unknown architecture {config.arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ARCHITECTURES", "ModelConfig", "build_model", "count_parameters"]
