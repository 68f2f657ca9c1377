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
    """uint8 (N, 28, 28) -> softmax (N, 10); (0, 10) for no images."""
    chunks = [F.softmax(model(to_float(images[i : i + 1000])).float(), 1) for i in range(0, len(images), 1000)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 10)


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Share right; None where there is nothing to score (a run trained with --val-size 0)."""
    return float((probs.argmax(1) == labels).float().mean()) if len(labels) else None


def _spread(values: list[float | None]) -> dict:
    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "sd": None}
    return {"mean": statistics.mean(known), "sd": statistics.stdev(known) if len(known) > 1 else 0.0}


def _pct(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}s} " if value is None else f"{100 * value:{width}.2f}%"


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
            "val_accuracy": _accuracy(pv, splits.val_y),
            "test_accuracy": _accuracy(pt, test_y),
        })  # fmt: skip
    out: dict = {"runs": rows}
    for key in ("val_accuracy", "test_accuracy"):
        out[key] = _spread([r[key] for r in rows])
    if len(checkpoints) > 1:
        same_split = len({len(p) for p in val_probs}) == 1
        out["ensemble"] = {
            "val_accuracy": _accuracy(torch.stack(val_probs).mean(0), splits.val_y) if same_split else None,
            "test_accuracy": _accuracy(torch.stack(test_probs).mean(0), test_y),
        }
    return out


def format_comparison(result: dict) -> str:
    lines = ["checkpoint                                   seed  best ep  validation    test"]
    for r in result["runs"]:
        lines.append(f"{r['checkpoint']:44s} {r['seed']:4d}  {r['best_epoch']:7d}  "
                     f"{_pct(r['val_accuracy'], 9)}  {_pct(r['test_accuracy'], 6)}")  # fmt: skip

    def spread(s: dict) -> str:
        return "n/a" if s["mean"] is None else f"{100 * s['mean']:.2f} +- {100 * s['sd']:.2f}%"

    label = f"mean +- sd over {len(result['runs'])} runs"
    lines.append(f"{label:56s}  {spread(result['val_accuracy'])}  {spread(result['test_accuracy'])}")
    if "ensemble" in result:
        e = result["ensemble"]
        lines.append(f"{'ensemble (mean of probabilities)':56s}  {_pct(e['val_accuracy'], 9)}  "
                     f"{_pct(e['test_accuracy'], 6)}")  # fmt: skip
    return "\n".join(lines)
