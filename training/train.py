"""The training loop: seeded, resumable, validated every epoch, best checkpoint kept."""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from training.augment import upload_like
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import file_checksums, load_split, random_affine, to_float, train_val_split
from training.distill import distillation_loss, load_teacher, soft_targets
from training.models import ModelConfig, build_model, count_parameters
from training.plots import plot_training_curves
from training.rendered import rendered_frames, sample_sheet
from training.warmstart import model_from_onnx

log = logging.getLogger(__name__)


def select_device(name: str) -> torch.device:
    """auto takes CUDA when present, else CPU; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Same seed, same run on CPU (cuDNN kernels may still differ slightly on GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    if tc.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    if tc.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    raise ValueError(f"unknown optimizer {tc.optimizer!r}; choose sgd, adam or adamw")


def _scheduler(opt: torch.optim.Optimizer, tc: TrainConfig, steps_per_epoch: int) -> Any:
    if tc.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, epochs=tc.epochs, steps_per_epoch=steps_per_epoch)
    if tc.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {tc.schedule!r}; choose none or onecycle")


@torch.no_grad()
def evaluate_torch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """(mean loss, accuracy) of model on uint8 images x (N, 28, 28) and labels y."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), 1000):
        xb = to_float(x[i : i + 1000]).to(device)  # (B, 1, 28, 28) float32 in [0, 1]
        yb = y[i : i + 1000].to(device)
        logits = model(xb).float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return loss_sum / len(x), correct / len(x)


@dataclass
class Run:
    """Everything one training run updates step by step: the model, its optimiser, schedule and
    weight average, and the random streams that --resume must put back."""

    tc: TrainConfig
    device: torch.device
    model: nn.Module
    opt: torch.optim.Optimizer
    loader_gen: torch.Generator
    aug_gen: torch.Generator
    sched: Any = None  # an LRScheduler, or None for a constant rate
    ema: AveragedModel | None = None
    augment: Callable[..., torch.Tensor] | None = None
    teacher: nn.Module | None = None
    use_amp: bool = False
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))

    @property
    def final(self) -> nn.Module:
        """The weights that are validated and exported: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model


def train(
    tc: TrainConfig,
    mc: ModelConfig,
    data_root: Path,
    run_dir: Path,
    resume: bool = False,
    download: bool = False,
    init_from: Path | None = None,
) -> Path:
    """Train, keeping run_dir/best.pt (best validation accuracy) and run_dir/last.pt (for --resume)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(tc.device)
    seed_everything(tc.seed)
    images, labels = load_split(data_root, train=True, download=download)
    splits = train_val_split(images, labels, tc.val_size, tc.split_seed, tc.limit_train)
    model, tc = _initial_model(mc, tc, splits.train_x, init_from)
    run, loader = _set_up(tc, model.to(device), device, splits.train_x, splits.train_y, run_dir)
    history: list[dict[str, Any]] = []
    start_epoch, best_acc = 1, -1.0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume:
        start_epoch, best_acc, history = _resume(run, mc, last_path)
    data_info = {
        "name": "MNIST",
        "train": len(splits.train_x),
        "val": len(splits.val_x),
        "test": 10000,
        "files": file_checksums(data_root),
    }
    log.info(
        "training %s (%d parameters) on %s for %d epochs, %d train / %d val images",
        mc.arch,
        count_parameters(run.model),
        device,
        tc.epochs,
        len(splits.train_x),
        len(splits.val_x),
    )
    stale = 0
    for epoch in range(start_epoch, tc.epochs + 1):
        seen, loss_sum, correct, train_time = _train_epoch(run, loader, epoch)
        no_val = not len(splits.val_x)  # --val-size 0 (seed-small's notebook trained on all 60,000): keep the last
        val_loss, val_acc = (
            (float("nan"),) * 2 if no_val else evaluate_torch(run.final, splits.val_x, splits.val_y, device)
        )
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": run.opt.param_groups[0]["lr"],
            "epoch_seconds": round(train_time, 2),
            "device": str(device),
        }
        history.append(row)
        improved = no_val or val_acc > best_acc
        if improved and not no_val:
            best_acc, stale = val_acc, 0
        elif not improved:
            stale += 1
        state = _state(run, mc, epoch, best_acc, history, data_info)
        save_checkpoint(last_path, **state)
        if improved:
            save_checkpoint(best_path, **state)
        _write_metrics(run_dir, history)
        tqdm.write(
            f"epoch {epoch:3d}/{tc.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            + ("no validation split" if no_val else f"val loss {val_loss:.4f} acc {val_acc:.4f}")
            + f"{'  *best*' if improved else ''}  {train_time:.1f}s"
        )
        if tc.patience and stale >= tc.patience:
            tqdm.write(f"early stop: no better validation accuracy for {tc.patience} epochs")
            break
    plot_training_curves(history, run_dir / "training_curves.png", title=f"{mc.arch} on MNIST")
    return best_path


def _initial_model(
    mc: ModelConfig, tc: TrainConfig, train_x: torch.Tensor, init_from: Path | None
) -> tuple[nn.Module, TrainConfig]:
    """A fresh model, or one warm-started from an exported graph or a checkpoint's weights (a
    fresh optimiser and schedule either way); the config then records where it started."""
    model = build_model(mc)
    if init_from is None:
        return model, tc
    if init_from.suffix == ".onnx":  # warm start from an exported graph
        model = model_from_onnx(init_from, to_float(train_x[:4096]))
    else:  # fine-tuning: weights only
        model.load_state_dict(load_checkpoint(init_from)["model"])
    log.info("initialised %s from %s", mc.arch, init_from)
    return model, replace(tc, init_from=str(init_from))


def _set_up(
    tc: TrainConfig, model: nn.Module, device: torch.device, train_x: torch.Tensor, train_y: torch.Tensor, run_dir: Path
) -> tuple[Run, DataLoader[Any]]:
    """The optimiser, the shuffled batches, the schedule, the weight average, the augmentation and
    the teacher, in the order their random streams are drawn."""
    opt = _optimizer(model, tc)
    loader_gen = torch.Generator().manual_seed(tc.seed)
    # --augment-kind rendered: each digit beside its rendering as an upload, framed as served
    columns: tuple[torch.Tensor, ...] = (train_x,)
    if tc.augment and tc.augment_kind == "rendered":
        columns = (train_x, _rendered(train_x))
        sample_sheet(train_x[:12].numpy(), run_dir / "rendered_uploads.png")
    loader = DataLoader(
        TensorDataset(*columns, train_y),
        batch_size=tc.batch_size,
        shuffle=True,
        generator=loader_gen,
        num_workers=tc.workers,
        drop_last=False,
    )
    sched = _scheduler(opt, tc, len(loader))
    # An exponential moving average of the weights (and BN statistics) is what gets validated and exported.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True)
        if tc.ema_decay
        else None
    )
    aug_gen = torch.Generator().manual_seed(tc.seed + 1)
    augments: dict[str, Callable[..., torch.Tensor]] = {
        "affine": random_affine,
        "upload": upload_like,
        "rendered": upload_like,
    }
    augment = augments.get(tc.augment_kind)
    if tc.augment and augment is None:
        raise ValueError(f"unknown augment_kind {tc.augment_kind!r}; choose affine, upload or rendered")
    teacher = load_teacher(tc.teacher, device) if tc.teacher else None
    use_amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    run = Run(tc, device, model, opt, loader_gen, aug_gen, sched, ema, augment, teacher, use_amp, scaler)
    return run, loader


def _resume(run: Run, mc: ModelConfig, last_path: Path) -> tuple[int, float, list[dict[str, Any]]]:
    """Put last.pt's weights, optimiser, schedule and random streams back: (next epoch, best
    validation accuracy, history so far)."""
    state = load_checkpoint(last_path)
    if state["train_config"] != run.tc.to_dict() or state["model_config"] != mc.to_dict():
        log.warning("resuming with configs that differ from the checkpoint's; using the checkpoint's weights")
    run.model.load_state_dict(state.get("train_model") or state["model"])
    if run.ema is not None and state.get("ema"):
        run.ema.load_state_dict(state["ema"])
    run.opt.load_state_dict(state["optimizer"])
    if run.sched is not None and state.get("scheduler"):
        run.sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    run.loader_gen.set_state(state["rng"]["loader"])
    run.aug_gen.set_state(state["rng"]["augment"])
    start_epoch, best_acc, history = state["epoch"] + 1, state["best_val_acc"], state["history"]
    log.info("resumed %s at epoch %d (best val acc %.4f)", last_path, start_epoch, best_acc)
    return start_epoch, best_acc, history


def _train_epoch(run: Run, loader: DataLoader[Any], epoch: int) -> tuple[int, float, int, float]:
    """One pass over the batches: (images seen, summed loss, correct, seconds)."""
    run.model.train()
    t0 = time.perf_counter()
    seen, loss_sum, correct = 0, 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{run.tc.epochs}", unit="batch", leave=False, dynamic_ncols=True)
    for xb, *more, yb in bar:
        if more:  # swap a share of the digits for their renderings as uploads
            swap = torch.rand(len(xb), generator=run.aug_gen) < run.tc.rendered_share
            xb = torch.where(swap[:, None, None], more[0], xb)
        xb = to_float(xb).to(run.device, non_blocking=True)  # (B, 1, 28, 28) float32 in [0, 1]
        yb = yb.to(run.device, non_blocking=True)
        logits, loss = _step(run, xb, yb)
        seen += len(yb)
        loss_sum += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum().item())
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
    return seen, loss_sum, correct, time.perf_counter() - t0


def _step(run: Run, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (augmented here when asked): (logits (B, 10), loss)."""
    tc = run.tc
    if tc.augment and run.augment is not None:
        xb = run.augment(xb, run.aug_gen)
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.use_amp):
        logits = run.model(xb)  # (B, 10)
        if run.teacher is not None:  # the teacher sees the same augmented batch
            targets = soft_targets(run.teacher, xb, tc.distill_temperature)  # (B, 10)
            loss = distillation_loss(logits, targets, yb, tc.distill_temperature, tc.distill_alpha, tc.label_smoothing)
        else:
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=tc.label_smoothing)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.opt)
    run.scaler.update()
    if run.sched is not None:
        run.sched.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    return logits, loss


def _state(
    run: Run, mc: ModelConfig, epoch: int, best_acc: float, history: list[dict[str, Any]], data_info: dict[str, Any]
) -> dict[str, Any]:
    """A self-describing checkpoint: configs, weights (averaged and raw), optimiser, schedule,
    history, the data it saw and the random streams, so that --resume continues exactly."""
    return {
        "model_config": mc.to_dict(),
        "train_config": run.tc.to_dict(),
        "model": run.final.state_dict(),
        "train_model": run.model.state_dict() if run.ema is not None else None,
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict() if run.sched else None,
        "epoch": epoch,
        "best_val_acc": best_acc,
        "history": history,
        "data": data_info,
        "rng": {
            "torch": torch.get_rng_state(),
            "loader": run.loader_gen.get_state(),
            "augment": run.aug_gen.get_state(),
        },
    }


def _rendered(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 training digits -> their renderings as uploads, framed as served."""
    return torch.from_numpy(rendered_frames(images.numpy(), seed=0))


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=2))
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
