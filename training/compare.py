"""Seeds side by side: each checkpoint's validation and test accuracy, their mean and sd, and the ensemble's.

Validation decides (selection, early stopping, temperature); test only reports. `mnist compare`.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from training.checkpoint import model_from_checkpoint
from training.data import load_split, to_float, train_val_split


@torch.no_grad()
def _probs(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> softmax (N, 10)."""
    return torch.cat([F.softmax(model(to_float(images[i : i + 1000])).float(), 1) for i in range(0, len(images), 1000)])


def compare(checkpoints: list[Path], data_root: Path) -> dict:
    """Per checkpoint and for the ensemble (mean of probabilities): validation and test accuracy."""
    train_x, train_y = load_split(data_root, train=True)
    test_x, test_y = load_split(data_root, train=False)
    rows, val_probs, test_probs = [], [], []
    for path in checkpoints:
        model, _, tc, state = model_from_checkpoint(path)
        splits = train_val_split(train_x, train_y, tc.val_size, tc.split_seed)
        pv, pt = _probs(model, splits.val_x), _probs(model, test_x)
        val_probs.append(pv)
        test_probs.append(pt)
        rows.append({
            "checkpoint": str(path),
            "seed": tc.seed,
            "best_epoch": len(state.get("history", [])),  # of its stage (a fine-tune counts its own)
            "val_accuracy": float((pv.argmax(1) == splits.val_y).float().mean()),
            "test_accuracy": float((pt.argmax(1) == test_y).float().mean()),
        })  # fmt: skip
    out: dict = {"runs": rows}
    for key in ("val_accuracy", "test_accuracy"):
        values = [r[key] for r in rows]
        out[key] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    if len(checkpoints) > 1:
        out["ensemble"] = {
            "val_accuracy": float((torch.stack(val_probs).mean(0).argmax(1) == splits.val_y).float().mean()),
            "test_accuracy": float((torch.stack(test_probs).mean(0).argmax(1) == test_y).float().mean()),
        }
    return out


def format_comparison(result: dict) -> str:
    lines = ["checkpoint                                   seed  best ep  validation    test"]
    for r in result["runs"]:
        lines.append(f"{r['checkpoint']:44s} {r['seed']:4d}  {r['best_epoch']:7d}  "
                     f"{100 * r['val_accuracy']:9.2f}%  {100 * r['test_accuracy']:6.2f}%")  # fmt: skip
    v, t = result["val_accuracy"], result["test_accuracy"]
    label = f"mean +- sd over {len(result['runs'])} runs"
    val, test = f"{100 * v['mean']:.2f} +- {100 * v['sd']:.2f}%", f"{100 * t['mean']:.2f} +- {100 * t['sd']:.2f}%"
    lines.append(f"{label:56s}  {val}  {test}")
    if "ensemble" in result:
        e = result["ensemble"]
        lines.append(f"{'ensemble (mean of probabilities)':56s}  {100 * e['val_accuracy']:9.2f}%  "
                     f"{100 * e['test_accuracy']:6.2f}%")  # fmt: skip
    return "\n".join(lines)
