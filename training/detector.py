"""Is this one handwritten digit? A small detector trained beside a frozen classifier.

Outlier exposure with negatives the project makes (training/negatives.py): MNIST training
digits are the positives, letters, two-digit numbers, scribbles and photo crops the negatives,
both through the same upload augmentation. The detector reads the frame with a small CNN of its
own and the classifier's pooled features (free: the classifier runs anyway), and is exported in
the same graph as a `digit_score` output. The classifier is frozen, so digit accuracy cannot move.

Its threshold is fitted on validation digits (the classifier's own held-out split): the score
that keeps `keep` of them; the checkpoint kept is the one that flags the most validation
negatives at that threshold. The test set is never looked at here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from contract import sha256_file
from training.augment import AugmentConfig, upload_like
from training.config import TrainConfig
from training.data import MnistSplits, load_split, to_float, train_val_split
from training.models import Normalize, _conv_bn
from training.negatives import KINDS, bank

# Real digits must not be flagged however they arrive, so the detector sees harder uploads than
# the classifier trains on: thicker and blurrier strokes, many from tiny images (an 8x8 icon
# upscaled reaches the service as blocks), some in a marker's width. Negatives go through
# exactly the same, so no augmentation can become a cue for "digit".
AUGMENT = AugmentConfig(
    p_thickness=0.5, p_blur=0.4, blur_sigma=(0.4, 2.2), p_lowres=0.3, lowres_sizes=(6, 20), p_noise=0.3
)
P_BLOCKY = 0.15
BLOCKY_SIZES = (6, 12)
P_BOLD = 0.2


@dataclass(frozen=True)
class DetectorConfig:
    """How the detector is built and trained; stored in its checkpoint."""

    channels: tuple[int, int, int] = (16, 32, 32)
    hidden: int = 64
    feature_dim: int = 64  # the classifier's pooled features (mnist-cnn's last conv width)
    epochs: int = 40  # served: validation rose until epoch 38 (20 epochs: 97.1% of validation negatives, 40: 97.8%)
    steps: int | None = None  # per epoch; None: one pass over the training digits
    batch_size: int = 128  # digits per step, and as many negatives
    lr: float = 2e-3
    negatives_per_kind: int = 15_000
    val_negatives_per_kind: int = 1_000
    keep: float = 0.992  # share of validation digits the threshold keeps (the target: 99% of test digits)
    turned: float = 0.0  # share of training negatives drawn mirrored or turned (validation negatives never are)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class DigitDetector(nn.Module):
    """(N, 1, 28, 28) frames + (N, F) classifier features -> (N,) logit of "one handwritten digit"."""

    def __init__(self, cfg: DetectorConfig = DetectorConfig()) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.conv = nn.Sequential(
            Normalize(),
            *_conv_bn(1, c1), nn.MaxPool2d(2),  # (N, c1, 14, 14)
            *_conv_bn(c1, c2), nn.MaxPool2d(2),  # (N, c2, 7, 7)
            *_conv_bn(c2, c3), nn.Flatten(),  # (N, c3 * 49): where the ink is matters (two digits side by side)
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(c3 * 49 + cfg.feature_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(x), features], dim=1)).squeeze(1)  # (N,)


def split_classifier(classifier: nn.Sequential) -> tuple[nn.Module, nn.Module]:
    """mnist-cnn as (body: frames -> pooled features (N, F), head: features -> logits (N, 10))."""
    layers = list(classifier)  # (slicing would call MnistCNN's own constructor)
    return nn.Sequential(*layers[:-1]), layers[-1]


class WithDetector(nn.Module):
    """The exported graph: logits / T, their softmax, and the detector's digit score in [0, 1].

    The classifier stays whole under `model` so its weights keep their names in the graph
    (`mnist train --init-from` reads them back by name).
    """

    def __init__(self, classifier: nn.Sequential, detector: DigitDetector, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = classifier
        self.detector = detector
        self.temperature = float(temperature)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        *body, head = list(self.model)
        features = pixels
        for layer in body:
            features = layer(features)  # ends (N, F): the pooled features
        logits = head(features) / self.temperature  # (N, 10)
        return logits, torch.softmax(logits, dim=1), torch.sigmoid(self.detector(pixels, features))  # ..., (N,)


@torch.no_grad()
def scores(detector: DigitDetector, body: nn.Module, frames: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """uint8 (N, 28, 28) frames -> (N,) float digit scores in [0, 1]."""
    detector.eval()
    out = []
    for i in range(0, len(frames), batch):
        x = to_float(frames[i : i + batch])
        out.append(torch.sigmoid(detector(x, body(x))))
    return torch.cat(out).numpy()


def fit_threshold(digit_scores: np.ndarray, keep: float) -> float:
    """The score that keeps `keep` of these (validation) digits: its (1 - keep) quantile."""
    return float(np.quantile(digit_scores, 1.0 - keep))


def evaluate(digit_scores: np.ndarray, negative_scores: np.ndarray, kinds: np.ndarray, keep: float) -> dict:
    """Threshold, digits kept, negatives flagged (all and per kind), AUROC."""
    t = fit_threshold(digit_scores, keep)
    y = np.r_[np.ones(len(digit_scores)), np.zeros(len(negative_scores))]
    return {
        "threshold": t,
        "digits_kept": float((digit_scores >= t).mean()),
        "flagged": float((negative_scores < t).mean()),
        "flagged_by_kind": {KINDS[k]: float((negative_scores[kinds == k] < t).mean()) for k in np.unique(kinds)},
        "auroc": float(roc_auc_score(y, np.r_[digit_scores, negative_scores])),
    }


def blocky(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Some frames as a tiny image upscaled by nearest neighbour (area-reduced to 6-12 px, then
    blocks), some in a marker's width (dilated by a pixel all round)."""
    idx = torch.nonzero(torch.rand(len(x), generator=generator) < P_BLOCKY).squeeze(1)
    if len(idx):
        size = int(torch.randint(BLOCKY_SIZES[0], BLOCKY_SIZES[1] + 1, (1,), generator=generator))
        small = F.interpolate(x[idx], size=(size, size), mode="area")
        x[idx] = F.interpolate(small, size=x.shape[-2:], mode="nearest")
    idx = torch.nonzero(torch.rand(len(x), generator=generator) < P_BOLD).squeeze(1)
    if len(idx):
        x[idx] = F.max_pool2d(x[idx], 3, stride=1, padding=1)
    return x


# The ways a negative is turned over (`turn`): mirrored left-right or top-bottom, turned 90/180/270.
TURNS = (
    lambda t: t.flip(-1),
    lambda t: t.flip(-2),
    lambda t: t.rot90(1, (-2, -1)),
    lambda t: t.rot90(2, (-2, -1)),
    lambda t: t.rot90(3, (-2, -1)),
)


def turn(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """`share` of these (N, 28, 28) negatives turned over one of the TURNS ways each.

    A letter or a photo crop turned over is still not a digit, and the fonts hold only so many
    shapes: turning multiplies them without drawing on any kind kept out of training.
    """
    pick = torch.rand(len(x), generator=generator) < share
    way = torch.randint(len(TURNS), (len(x),), generator=generator)
    out = x.clone()
    for w, f in enumerate(TURNS):
        idx = torch.nonzero(pick & (way == w)).squeeze(1)
        if len(idx):
            out[idx] = f(x[idx])
    return out


@dataclass(frozen=True)
class _Frames:
    """What the detector trains and is chosen on: uint8 (N, 28, 28) frames, digits and negatives."""

    digits: torch.Tensor  # the classifier's training digits
    negatives: torch.Tensor
    val_digits: torch.Tensor  # the classifier's validation digits
    val_negatives: torch.Tensor
    val_kinds: np.ndarray  # (N,) index into KINDS of each validation negative


def _frozen_classifier(classifier_onnx: Path, data_root: Path) -> tuple[dict, MnistSplits, nn.Module]:
    """The classifier's metadata, its own train/validation split, and its body (frozen, eval mode)."""
    from training.warmstart import model_from_onnx

    meta = json.loads((classifier_onnx.parent / "metadata.json").read_text())
    tc = TrainConfig.from_dict(meta["train_config"])
    images, labels = load_split(data_root, train=True)
    splits = train_val_split(images, labels, tc.val_size, tc.split_seed)  # the classifier's own split
    classifier = cast(nn.Sequential, model_from_onnx(classifier_onnx, to_float(splits.train_x[:4096])).eval())
    body, _ = split_classifier(classifier)
    for p in classifier.parameters():
        p.requires_grad_(False)
    return meta, splits, body


def _frames(splits: MnistSplits, cfg: DetectorConfig, cache: Path) -> _Frames:
    """The digits of the classifier's split beside negatives drawn from the same side of it."""
    t0 = time.time()
    print(f"negatives: {', '.join(KINDS)} ...", flush=True)
    neg, _ = bank(cfg.negatives_per_kind, cfg.seed, splits.train_x.numpy(), cache=cache)
    val_neg, val_kinds = bank(cfg.val_negatives_per_kind, cfg.seed + 1, splits.val_x.numpy(), cache=cache)
    print(f"{len(neg):,} training and {len(val_neg):,} validation negatives ({time.time() - t0:.0f} s)", flush=True)
    return _Frames(splits.train_x, torch.from_numpy(neg), splits.val_x, torch.from_numpy(val_neg), val_kinds)


def _batch(
    frames: _Frames, order: torch.Tensor, step: int, cfg: DetectorConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step`'s digits (in `order`) and as many random negatives, all augmented alike: (2B, 1, 28, 28), (2B,)."""
    pos = frames.digits[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
    neg = frames.negatives[torch.randint(len(frames.negatives), (cfg.batch_size,), generator=gen)]
    if cfg.turned:
        neg = turn(neg, cfg.turned, gen)
    x = blocky(upload_like(to_float(torch.cat([pos, neg])), gen, AUGMENT), gen)
    return x, torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])


def _train_epoch(
    detector: DigitDetector,
    body: nn.Module,
    frames: _Frames,
    optimise: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
    cfg: DetectorConfig,
    gen: torch.Generator,
    epoch: int,
    steps: int,
) -> float:
    """One pass of `steps` steps over the training digits (a fresh order each epoch); the mean loss."""
    opt, sched = optimise
    detector.train()
    total = 0.0
    order = torch.randperm(len(frames.digits), generator=gen)
    for step in range(steps):
        x, y = _batch(frames, order, step, cfg, gen)
        with torch.no_grad():
            features = body(x)  # (2B, F); body is in eval mode: its BN statistics stay as exported
        loss = F.binary_cross_entropy_with_logits(detector(x, features), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach())
        if (step + 1) % 100 == 0:
            print(f"  epoch {epoch} step {step + 1}/{steps} loss {total / (step + 1):.4f}", flush=True)
    return total / steps


def _epoch_line(epoch: int, cfg: DetectorConfig, loss: float, report: dict, seconds: float) -> str:
    by_kind = ", ".join(f"{k} {100 * v:.1f}%" for k, v in report["flagged_by_kind"].items())
    return (
        f"epoch {epoch}/{cfg.epochs}: loss {loss:.4f}, val AUROC {report['auroc']:.4f}, "
        f"{100 * report['flagged']:.1f}% of negatives flagged keeping {100 * report['digits_kept']:.1f}% "
        f"of digits ({by_kind}), {seconds:.0f} s"
    )


def train_detector(classifier_onnx: Path, data_root: Path, out_dir: Path, cfg: DetectorConfig) -> Path:
    """Train beside the exported classifier (kept frozen); writes out_dir/detector.pt and returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    meta, splits, body = _frozen_classifier(classifier_onnx, data_root)
    frames = _frames(splits, cfg, cache=out_dir)

    detector = DigitDetector(cfg)
    opt = torch.optim.AdamW(detector.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.steps or len(frames.digits) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best: dict | None = None
    for epoch in range(1, cfg.epochs + 1):
        start = time.time()
        loss = _train_epoch(detector, body, frames, (opt, sched), cfg, gen, epoch, steps)
        seconds = time.time() - start
        digit_scores, negative_scores = (
            scores(detector, body, frames.val_digits),
            scores(detector, body, frames.val_negatives),
        )
        report = evaluate(digit_scores, negative_scores, frames.val_kinds, cfg.keep)
        history.append({"epoch": epoch, "loss": loss, "epoch_seconds": round(seconds, 1), **report})
        print(_epoch_line(epoch, cfg, loss, report, seconds), flush=True)
        if best is None or (report["flagged"], report["auroc"]) > (best["flagged"], best["auroc"]):
            best = {**report, "epoch": epoch}
            checkpoint = {
                "detector": detector.state_dict(),
                "detector_config": cfg.to_dict(),
                "classifier_onnx": str(classifier_onnx),
                "classifier_sha256": sha256_file(classifier_onnx),
                "classifier_version": meta["version"],
                "validation": best,
                "history": history,
                "trained_kinds": list(KINDS),
            }
            torch.save(checkpoint, out_dir / "detector.pt")
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    assert best is not None
    print(f"wrote {out_dir / 'detector.pt'} (epoch {best['epoch']}, val AUROC {best['auroc']:.4f})")
    return out_dir / "detector.pt"


def load_detector(path: Path) -> tuple[DigitDetector, dict]:
    """A detector checkpoint back as (module in eval mode, the checkpoint's other fields)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    raw = state["detector_config"]
    cfg = DetectorConfig(**{**raw, "channels": tuple(raw["channels"])})
    detector = DigitDetector(cfg)
    detector.load_state_dict(state["detector"])
    return detector.eval(), state
