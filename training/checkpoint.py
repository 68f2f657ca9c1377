"""Self-describing checkpoints: weights plus the configs needed to rebuild and resume them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.config import TrainConfig
from training.models import ModelConfig, build_model


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not describe a model we can build."""


def save_checkpoint(path: Path, **state: object) -> None:
    """Write atomically so an interrupted run never leaves a half-written checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by save_checkpoint; any other file gives CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint of this project "
            f"({type(exc).__name__}: {exc}); retrain, or pass the best.pt of a finished run"
        ) from None
    missing = {"model_config", "train_config", "model"} - set(state if isinstance(state, dict) else ())
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(sorted(missing))}; was it written by `mnist train`?")
    return state


def model_from_checkpoint(path: Path) -> tuple[nn.Module, ModelConfig, TrainConfig, dict]:
    """Rebuild the model in eval mode from its own stored configs."""
    state = load_checkpoint(path)
    mc = ModelConfig.from_dict(state["model_config"])
    tc = TrainConfig.from_dict(state["train_config"])
    model = build_model(mc)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match architecture {mc.arch}: {exc}") from None
    return model.eval(), mc, tc, state
