"""Seeds side by side: each checkpoint's validation and test accuracy, their mean and sd, and the ensemble's.

Validation decides (selection, early stopping, temperature); test only reports. `mnist compare`.
Beside MNIST's own validation digits, the same digits rendered as uploads and framed as served
(training/rendered.py, seed 1: other draws than any training run's): how a run holds up on real
uploads, still chosen on validation data only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contract import METADATA_FILE, ModelFiles, read_metadata
from training.checkpoint import model_from_checkpoint
from training.config import TrainConfig
from training.data import load_split, to_float, train_val_split
from training.rendered import rendered_frames

Model = Callable[[torch.Tensor], torch.Tensor]  # (N, 1, 28, 28) -> (N, 10) logits
UPLOADS_SEED = 1  # validation renderings; training renders its split with seed 0


@torch.no_grad()
def _probs(model: Model, images: torch.Tensor) -> torch.Tensor:
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


class _Graph:
    """An exported model.onnx, called like a module: (N, 1, 28, 28) -> its (calibrated) logits."""

    def __init__(self, path: Path, logits: str, pixels: str) -> None:
        from training.evaluate import ort_session

        self.session = ort_session(path)
        self.logits, self.pixels = logits, pixels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run([self.logits], {self.pixels: x.numpy()})
        return torch.from_numpy(out)


def _load(path: Path) -> tuple[Model, TrainConfig, int]:
    """A best.pt, or a version's model.onnx (the served one, say) with the configs in its metadata:
    (model, its TrainConfig, its best epoch (of its stage: a fine-tune counts its own))."""
    if path.suffix == ".onnx":
        meta = read_metadata(ModelFiles(onnx=path, metadata=path.with_name(METADATA_FILE)))
        extra = meta.model_extra or {}  # what training recorded beside the contract's fields
        graph = _Graph(path, meta.outputs.logits.name, meta.input.name)
        return graph, TrainConfig.from_dict(extra["train_config"]), int(extra.get("best_epoch") or 0)
    model, _, tc, state = model_from_checkpoint(path)
    return model, tc, len(state.get("history", []))


def compare(checkpoints: list[Path], data_root: Path, uploads: bool = True) -> dict:
    """Per checkpoint and for the ensemble (mean of probabilities): validation, validation as
    uploads (uploads=False: skipped, n/a; rendering 6,000 digits takes ~40 s once, then cached)
    and test accuracy."""
    train_x, train_y = load_split(data_root, train=True)
    test_x, test_y = load_split(data_root, train=False)
    rows: list[dict[str, Any]] = []
    val_probs: list[torch.Tensor] = []
    upload_probs: list[torch.Tensor | None] = []
    test_probs: list[torch.Tensor] = []
    rendered: dict[tuple[int, int], torch.Tensor | None] = {}  # per split: its validation digits as uploads
    for path in checkpoints:
        model, tc, best_epoch = _load(path)
        splits = train_val_split(train_x, train_y, tc.val_size, tc.split_seed)
        split = (tc.val_size, tc.split_seed)
        if split not in rendered:
            as_uploads = uploads and len(splits.val_x)
            rendered[split] = (
                torch.from_numpy(rendered_frames(splits.val_x.numpy(), seed=UPLOADS_SEED)) if as_uploads else None
            )
        pv, pt = _probs(model, splits.val_x), _probs(model, test_x)
        as_rendered = rendered[split]
        pu = _probs(model, as_rendered) if as_rendered is not None else None
        val_probs.append(pv)
        upload_probs.append(pu)
        test_probs.append(pt)
        rows.append({
            "checkpoint": str(path),
            "seed": tc.seed,
            "best_epoch": best_epoch,
            "val_accuracy": _accuracy(pv, splits.val_y),
            "val_uploads_accuracy": _accuracy(pu, splits.val_y) if pu is not None else None,
            "test_accuracy": _accuracy(pt, test_y),
        })  # fmt: skip
    out: dict = {"runs": rows}
    for key in KEYS:
        out[key] = _spread([r[key] for r in rows])
    if len(checkpoints) > 1:
        same_split = len(rendered) == 1
        with_uploads = same_split and all(p is not None for p in upload_probs)
        out["ensemble"] = {
            "val_accuracy": _accuracy(torch.stack(val_probs).mean(0), splits.val_y) if same_split else None,
            "val_uploads_accuracy": (
                _accuracy(torch.stack([p for p in upload_probs if p is not None]).mean(0), splits.val_y)
                if with_uploads
                else None
            ),
            "test_accuracy": _accuracy(torch.stack(test_probs).mean(0), test_y),
        }
    return out


KEYS = ("val_accuracy", "val_uploads_accuracy", "test_accuracy")


def format_comparison(result: dict) -> str:
    lines = ["checkpoint                                   seed  best ep  validation  val. uploads    test"]
    for r in result["runs"]:
        lines.append(f"{r['checkpoint']:44s} {r['seed']:4d}  {r['best_epoch']:7d}  {_pct(r['val_accuracy'], 9)}  "
                     f"{_pct(r['val_uploads_accuracy'], 11)}  {_pct(r['test_accuracy'], 6)}")  # fmt: skip

    def spread(s: dict) -> str:
        return "n/a" if s["mean"] is None else f"{100 * s['mean']:.2f} +- {100 * s['sd']:.2f}%"

    lines.append(f"mean +- sd over {len(result['runs'])} runs")
    lines.append("  " + "   ".join(f"{name} {spread(result[key])}" for name, key in zip(NAMES, KEYS, strict=True)))
    if "ensemble" in result:
        e = result["ensemble"]
        lines.append("ensemble (mean of probabilities)")
        cells = [f"{name} {_pct(e[key], 0).strip()}" for name, key in zip(NAMES, KEYS, strict=True)]
        lines.append("  " + "   ".join(cells))
    return "\n".join(lines)


NAMES = ("validation", "val. uploads", "test")
