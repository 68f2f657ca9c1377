"""Start training from an exported model: model.onnx (BatchNorm folded) back into its nn.Module.

`mnist train --init-from models/<version>/model.onnx` fine-tunes a served model whose checkpoint
is gone (a temperature folded into the graph is left out: training wants raw logits). The
exporter folds each BatchNorm into its convolution (weight W, bias b); unfolding
puts the layer's measured pre-BN statistics back (mean m, variance v), so that training-mode
BatchNorm computes the same function the graph did: gamma = sqrt(v + eps), beta = b + m.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.models import ModelConfig, build_model


def config_beside(onnx_path: Path) -> ModelConfig:
    """The ModelConfig recorded in the metadata.json next to the graph."""
    meta = json.loads((onnx_path.parent / "metadata.json").read_text())
    return ModelConfig.from_dict(meta["model_config"])


def _initializers(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Initialisers by layer ("1.weight", "1.weight_bias"), whatever wrappers the export added."""
    graph = onnx.load(str(onnx_path)).graph
    return {
        re.sub(r"^(model\.)+", "", i.name): torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer
    }


@torch.no_grad()
def model_from_onnx(onnx_path: Path, images: torch.Tensor) -> nn.Module:
    """Rebuild the graph's nn.Module (mnist-cnn only); images (N, 1, 28, 28) in [0, 1] measure BN statistics."""
    mc = config_beside(onnx_path)
    if mc.arch != "mnist-cnn":
        raise ValueError(f"warm start from ONNX knows mnist-cnn only, not {mc.arch!r}")
    model = build_model(mc).eval()
    weights = _initializers(onnx_path)
    layers = list(cast(nn.Sequential, model))
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            bn = cast(nn.BatchNorm2d, layers[i + 1])
            assert bn.running_mean is not None and bn.running_var is not None  # mnist-cnn tracks them
            layer.weight.copy_(weights[f"{i}.weight"])
            bn.weight.fill_(1.0)
            bn.bias.copy_(weights[f"{i}.weight_bias"])
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # BN is the identity plus the folded bias
        elif isinstance(layer, nn.Linear):
            layer.weight.copy_(weights[f"{i}.weight"])
            layer.bias.copy_(weights[f"{i}.bias"])
    # Measure each convolution's output statistics, then move them into BatchNorm.
    x = images
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d):
            assert layer.running_mean is not None and layer.running_var is not None
            conv_out = x  # the conv's output W x (no bias): (N, C, H, W)
            m = conv_out.mean((0, 2, 3))
            v = conv_out.var((0, 2, 3), unbiased=False)
            layer.weight.copy_(torch.sqrt(v + layer.eps))
            layer.bias.add_(m)
            layer.running_mean.copy_(m)
            layer.running_var.copy_(v)
        x = layer(x)
    return model
