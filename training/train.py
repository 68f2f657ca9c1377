"""The training loop: seeded, resumable, validated every epoch, best checkpoint kept."""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path

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


def _scheduler(opt: torch.optim.Optimizer, tc: TrainConfig, steps_per_epoch: int):
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
    model = build_model(mc)
    if init_from is not None and init_from.suffix == ".onnx":  # warm start from an exported graph
        model = model_from_onnx(init_from, to_float(splits.train_x[:4096]))
        tc = replace(tc, init_from=str(init_from))
        log.info("initialised %s from %s", mc.arch, init_from)
    elif init_from is not None:  # warm start (fine-tuning): weights only, a fresh optimizer and schedule
        model.load_state_dict(load_checkpoint(init_from)["model"])
        tc = replace(tc, init_from=str(init_from))
        log.info("initialised %s from %s", mc.arch, init_from)
    model = model.to(device)
    opt = _optimizer(model, tc)
    loader_gen = torch.Generator().manual_seed(tc.seed)
    # --augment-kind rendered: each digit beside its rendering as an upload, framed as served
    columns: tuple[torch.Tensor, ...] = (splits.train_x,)
    if tc.augment and tc.augment_kind == "rendered":
        columns = (splits.train_x, _rendered(splits.train_x))
        sample_sheet(splits.train_x[:12].numpy(), run_dir / "rendered_uploads.png")
    loader = DataLoader(
        TensorDataset(*columns, splits.train_y),
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
    augment = {"affine": random_affine, "upload": upload_like, "rendered": upload_like}.get(tc.augment_kind)
    if tc.augment and augment is None:
        raise ValueError(f"unknown augment_kind {tc.augment_kind!r}; choose affine, upload or rendered")
    teacher = load_teacher(tc.teacher, device) if tc.teacher else None
    use_amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    start_epoch, best_acc = 1, -1.0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    if resume:
        state = load_checkpoint(last_path)
        if state["train_config"] != tc.to_dict() or state["model_config"] != mc.to_dict():
            log.warning("resuming with configs that differ from the checkpoint's; using the checkpoint's weights")
        model.load_state_dict(state.get("train_model") or state["model"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        loader_gen.set_state(state["rng"]["loader"])
        aug_gen.set_state(state["rng"]["augment"])
        start_epoch, best_acc, history = state["epoch"] + 1, state["best_val_acc"], state["history"]
        log.info("resumed %s at epoch %d (best val acc %.4f)", last_path, start_epoch, best_acc)

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
        count_parameters(model),
        device,
        tc.epochs,
        len(splits.train_x),
        len(splits.val_x),
    )
    stale = 0
    for epoch in range(start_epoch, tc.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", unit="batch", leave=False, dynamic_ncols=True)
        for xb, *more, yb in bar:
            if more:  # swap a share of the digits for their renderings as uploads
                swap = torch.rand(len(xb), generator=aug_gen) < tc.rendered_share
                xb = torch.where(swap[:, None, None], more[0], xb)
            xb = to_float(xb).to(device, non_blocking=True)  # (B, 1, 28, 28) float32 in [0, 1]
            yb = yb.to(device, non_blocking=True)
            if tc.augment:
                xb = augment(xb, aug_gen)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(xb)  # (B, 10)
                if teacher is not None:  # the teacher sees the same augmented batch
                    targets = soft_targets(teacher, xb, tc.distill_temperature)  # (B, 10)
                    loss = distillation_loss(
                        logits, targets, yb, tc.distill_temperature, tc.distill_alpha, tc.label_smoothing
                    )
                else:
                    loss = F.cross_entropy(logits.float(), yb, label_smoothing=tc.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            if ema is not None:
                ema.update_parameters(model)
            seen += len(yb)
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        train_time = time.perf_counter() - t0
        final = ema.module if ema is not None else model  # the weights that are validated and exported
        no_val = not len(splits.val_x)  # --val-size 0 (seed-small's notebook trained on all 60,000): keep the last
        val_loss, val_acc = (float("nan"),) * 2 if no_val else evaluate_torch(final, splits.val_x, splits.val_y, device)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": opt.param_groups[0]["lr"],
            "epoch_seconds": round(train_time, 2),
            "device": str(device),
        }
        history.append(row)
        improved = no_val or val_acc > best_acc
        if improved and not no_val:
            best_acc, stale = val_acc, 0
        elif not improved:
            stale += 1
        state = {
            "model_config": mc.to_dict(),
            "train_config": tc.to_dict(),
            "model": final.state_dict(),
            "train_model": model.state_dict() if ema is not None else None,
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched else None,
            "epoch": epoch,
            "best_val_acc": best_acc,
            "history": history,
            "data": data_info,
            "rng": {"torch": torch.get_rng_state(), "loader": loader_gen.get_state(), "augment": aug_gen.get_state()},
        }
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


def _rendered(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 training digits -> their renderings as uploads, framed as served."""
    return torch.from_numpy(rendered_frames(images.numpy(), seed=0))


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=2))
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
