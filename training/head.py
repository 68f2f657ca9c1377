"""Is this one digit? A small head on the classifier's own trunk, trained with the trunk frozen.

The classifier already computes, for every frame, a (32, 7, 7) map after its second pooling and a
(64, 7, 7) map after its last convolution. The head reads both with one 1x1 convolution (96 -> 16
channels: where the ink is still matters, two digits side by side), then the pooled features and
the logits, through one hidden layer: about 0.13M multiply-adds beside the classifier's 3.5M, so
the served graph costs little more than the classifier alone. The trunk is frozen, so digit
accuracy cannot move, and its activations for a fixed set of frames are computed once and cached:
training the head takes minutes.

Frames (training/head_data.py): positives are MNIST's training digits (half through the upload
augmentation), digits rendered as uploads, digits at low resolution and printed digits in the
training font families; negatives are every kind of training/negatives.py. Validation has its own
frames (the classifier's validation digits, the validation font families, other draws); the head,
its calibration and its threshold are chosen there. The test set and the test font families are
never looked at here.

digit_score is calibrated on validation (Platt: a logistic fit of the head's logit, folded into
the graph): of validation frames scored about 0.9, about 9 in 10 are digits, with digits and
non-digits weighed equally. The threshold is the highest score that keeps `keep` of every
validation digit kind (MNIST, as uploads, low resolution, printed).
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

# MnistCNN layer indices: (N, 32, 14, 14) before the second pool, (N, 32, 7, 7) after it, (N, 64, 7, 7) last ReLU
TAPS = (10, 11, 17)
TAP_CHANNELS = (32, 32, 64)


@dataclass(frozen=True)
class HeadConfig:
    """How the head is built and trained; stored in its checkpoint."""

    reduce: int = 16  # 1x1 convolution's channels over both 7x7 maps
    fine: int = 0  # 1x1 convolution's channels over the 14x14 map; 0: the head does not read it
    hidden: int = 64
    epochs: int = 12
    steps: int = 250  # per epoch
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    keep: float = 0.99  # of every validation digit kind, at the threshold
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class TrunkHead(nn.Module):
    """Trunk maps (N, 32, 14, 14), (N, 32, 7, 7), (N, 64, 7, 7), pooled (N, 64), logits (N, 10) -> (N,) logit.

    `scale` and `shift` are the calibration (Platt, fitted on validation): the score is
    sigmoid(scale * logit + shift).
    """

    scale: torch.Tensor  # buffers: the Platt scale and shift fitted on validation
    shift: torch.Tensor

    def __init__(self, cfg: HeadConfig = HeadConfig()) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(sum(TAP_CHANNELS[1:]), cfg.reduce, 1, bias=False), nn.BatchNorm2d(cfg.reduce), nn.ReLU(),
            nn.Flatten(),  # (N, reduce * 49)
        )  # fmt: skip
        self.fine = nn.Sequential(
            nn.Conv2d(TAP_CHANNELS[0], cfg.fine, 1, bias=False), nn.BatchNorm2d(cfg.fine), nn.ReLU(),
            nn.Flatten(),  # (N, fine * 196)
        ) if cfg.fine else None  # fmt: skip
        width = cfg.reduce * 49 + cfg.fine * 196 + 64 + 10
        self.mlp = nn.Sequential(nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))

    def forward(self, taps: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """taps: trunk()'s five outputs -> (N,) uncalibrated logit."""
        fine, a, b, pooled, logits = taps
        parts = [self.reduce(torch.cat([a, b], dim=1)), pooled, logits]
        if self.fine is not None:
            parts.insert(1, self.fine(fine))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)

    def cached(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """forward() on cached maps stored channels-last ((N, 49, 96), (N, 196, 32)): each 1x1
        convolution as one matrix product (much faster to train on a CPU), the same function."""
        parts = [_pointwise(self.reduce, feats["maps"].float(), self.training), feats["pooled"], feats["logits"]]
        if self.fine is not None:
            parts.insert(1, _pointwise(self.fine, feats["fine"].float(), self.training))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)

    def score(self, taps: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.sigmoid(self.scale * self.forward(taps) + self.shift)  # (N,) in [0, 1]


def _pointwise(block: nn.Sequential, maps: torch.Tensor, training: bool) -> torch.Tensor:
    """block (1x1 conv, BN, ReLU, Flatten) on channels-last maps (N, K, C) -> (N, C' * K) as block gives."""
    conv, bn = cast(nn.Conv2d, block[0]), cast(nn.BatchNorm2d, block[1])
    y = maps @ conv.weight.flatten(1).T  # (N, K, C')
    n, k, c = y.shape
    y = F.relu(F.batch_norm(y.reshape(n * k, c), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            training, bn.momentum or 0.1, bn.eps))  # fmt: skip
    return y.reshape(n, k, c).transpose(1, 2).flatten(1)  # channel-major, as Flatten


def trunk(classifier: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(N, 1, 28, 28) -> the three maps, the pooled features and the logits (uncalibrated)."""
    *body, last = list(classifier)
    taps = []
    for i, layer in enumerate(body):
        x = layer(x)
        if i in TAPS:
            taps.append(x)
    return (*taps, x, last(x))  # x ends (N, 64): body ends with pool, flatten, dropout


class WithHead(nn.Module):
    """The exported graph: logits / T, their softmax, and the head's calibrated digit score.

    The classifier stays whole under `model` so its weights keep their names in the graph.
    """

    def __init__(self, classifier: nn.Sequential, head: TrunkHead, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = classifier
        self.detector = head
        self.temperature = float(temperature)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        taps = trunk(self.model, pixels)
        logits = taps[-1] / self.temperature  # (N, 10)
        return logits, torch.softmax(logits, dim=1), self.detector.score(taps)  # ..., (N,)


@torch.no_grad()
def features(classifier: nn.Sequential, frames: np.ndarray, path: Path, batch: int = 1024) -> dict[str, torch.Tensor]:
    """uint8 (N, 28, 28) frames -> the trunk's outputs: both maps channels-last as float16 (N, 49, 96),
    pooled (N, 64) and logits (N, 10); kept in path (.npz) and read back from there."""
    if path.exists():
        z = np.load(path)
        return {k: torch.from_numpy(z[k]) for k in ("fine", "maps", "pooled", "logits")}
    fine, maps, pooled, logits = [], [], [], []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).float().div_(255.0).unsqueeze(1)  # (B, 1, 28, 28)
        f, a, b, p, z = trunk(classifier, x)
        fine.append(f.flatten(2).transpose(1, 2).half())  # (B, 196, 32)
        maps.append(torch.cat([a, b], dim=1).flatten(2).transpose(1, 2).half())  # (B, 49, 96)
        pooled.append(p)
        logits.append(z)
    out = {"fine": torch.cat(fine), "maps": torch.cat(maps), "pooled": torch.cat(pooled), "logits": torch.cat(logits)}
    np.savez(path, **{k: v.numpy() for k, v in out.items()})  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return out


@torch.no_grad()
def head_logits(head: TrunkHead, feats: dict[str, torch.Tensor], batch: int = 4096) -> np.ndarray:
    """The head's uncalibrated logit for each cached frame: (N,)."""
    head.eval()
    n = len(feats["pooled"])
    out = [head.cached({k: v[i : i + batch] for k, v in feats.items()}) for i in range(0, n, batch)]
    return torch.cat(out).numpy()


def platt(logits: np.ndarray, is_digit: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(scale, shift) of a weighted logistic fit of is_digit on the logit: the calibration."""
    z, y, w = (torch.tensor(a, dtype=torch.float64) for a in (logits, is_digit, weights))
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = (w * F.binary_cross_entropy_with_logits(ab[0] * z + ab[1], y, reduction="none")).sum() / w.sum()
        value.backward()
        return value

    opt.step(loss)
    return float(ab[0].detach()), float(ab[1].detach())


def balanced_weights(is_digit: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group weighs the same within its side, and digits as much as non-digits."""
    w = np.zeros(len(groups))
    for side in (0, 1):
        names = np.unique(groups[is_digit == side])
        for g in names:
            m = (groups == g) & (is_digit == side)
            w[m] = 0.5 / (len(names) * m.sum())
    return w


def choose_threshold(score: np.ndarray, is_digit: np.ndarray, groups: np.ndarray, keep: float) -> float:
    """The highest score that keeps `keep` of every digit group."""
    return float(
        min(np.quantile(score[(groups == g) & (is_digit == 1)], 1 - keep) for g in np.unique(groups[is_digit == 1]))
    )


def report(score: np.ndarray, is_digit: np.ndarray, groups: np.ndarray, threshold: float) -> dict:
    """Share flagged per group, negatives flagged (mean over kinds), AUROC of all digits vs all negatives."""
    per = {str(g): float((score[groups == g] < threshold).mean()) for g in np.unique(groups)}
    neg = [per[str(g)] for g in np.unique(groups[is_digit == 0])]
    return {
        "threshold": threshold,
        "flagged": float(np.mean(neg)),
        "flagged_by_kind": per,
        "auroc": float(roc_auc_score(is_digit, score)),
    }


def reliability(score: np.ndarray, is_digit: np.ndarray, weights: np.ndarray, bins: int = 10) -> dict:
    """Weighted share of digits per score bin, and the expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(score, edges) - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if not m.any():
            continue
        w = weights[m].sum()
        mean_score, digits = float((weights[m] * score[m]).sum() / w), float((weights[m] * is_digit[m]).sum() / w)
        rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "mean_score": mean_score, "digit_share": digits,
                     "weight": float(w / weights.sum()), "n": int(m.sum())})  # fmt: skip
        ece += w / weights.sum() * abs(mean_score - digits)
    return {"bins": rows, "ece": float(ece)}


def _fit(
    head: TrunkHead,
    train: dict[str, torch.Tensor],
    train_y: np.ndarray,
    val: dict[str, torch.Tensor],
    val_y: np.ndarray,
    val_groups: np.ndarray,
    cfg: HeadConfig,
) -> tuple[dict, list[dict]]:
    """Train for cfg.epochs and leave `head` at the epoch that flags the most validation negatives
    (AUROC breaks ties); that epoch's report and every epoch's."""
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * cfg.steps)
    y = torch.from_numpy(train_y.astype(np.float32))
    # Each side weighs the same in the loss, whatever their counts.
    pos_w = torch.tensor(float((train_y == 0).sum()) / max(float((train_y == 1).sum()), 1.0))
    gen = torch.Generator().manual_seed(cfg.seed)
    best: dict | None = None
    history: list[dict] = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        start, total = time.time(), 0.0
        for _ in range(cfg.steps):
            idx = torch.randint(len(train_y), (cfg.batch_size,), generator=gen)
            out = head.cached({k: v[idx] for k, v in train.items()})
            loss = F.binary_cross_entropy_with_logits(out, y[idx], pos_weight=pos_w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        z = head_logits(head, val)
        rep = report(z, val_y, val_groups, choose_threshold(z, val_y, val_groups, cfg.keep))
        history.append(
            {"epoch": epoch, "loss": total / cfg.steps, "epoch_seconds": round(time.time() - start, 1), **rep}
        )
        print(
            f"epoch {epoch}/{cfg.epochs}: loss {total / cfg.steps:.4f}, val AUROC {rep['auroc']:.4f}, "
            f"{100 * rep['flagged']:.2f}% of negatives flagged keeping {100 * cfg.keep:g}% of each digit kind, "
            f"{time.time() - start:.0f} s",
            flush=True,
        )
        if best is None or (rep["flagged"], rep["auroc"]) > (best["flagged"], best["auroc"]):
            best = {**rep, "epoch": epoch}
            state = {k: v.clone() for k, v in head.state_dict().items()}
    assert best is not None
    head.load_state_dict(state)
    return best, history


def _calibrate(
    head: TrunkHead, val: dict[str, torch.Tensor], val_y: np.ndarray, val_groups: np.ndarray, keep: float
) -> tuple[float, dict, dict]:
    """Fold a Platt fit on validation into `head`; the threshold on the calibrated score, its
    report and the calibration's record."""
    z = head_logits(head, val)
    w = balanced_weights(val_y, val_groups)
    scale, shift = platt(z, val_y, w)
    head.scale.fill_(scale)
    head.shift.fill_(shift)
    score = 1 / (1 + np.exp(-(scale * z + shift)))
    threshold = choose_threshold(score, val_y, val_groups, keep)
    calibration = {"method": "Platt (weighted logistic fit on validation)", "scale": scale, "shift": shift,
                   "weighting": "every validation kind the same within its side; digits and non-digits equal",
                   **reliability(score, val_y, w)}  # fmt: skip
    return threshold, report(score, val_y, val_groups, threshold), calibration


def train_head(
    train: dict[str, torch.Tensor],
    train_y: np.ndarray,
    val: dict[str, torch.Tensor],
    val_y: np.ndarray,
    val_groups: np.ndarray,
    cfg: HeadConfig,
    out_dir: Path,
    extra: dict,
) -> Path:
    """Train on cached trunk features; keep the epoch that flags the most validation negatives."""
    torch.manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = TrunkHead(cfg)
    best, history = _fit(head, train, train_y, val, val_y, val_groups, cfg)
    threshold, final, calibration = _calibrate(head, val, val_y, val_groups, cfg.keep)
    print(f"best epoch {best['epoch']}: calibrated threshold {threshold:.4f}, ECE {calibration['ece']:.4f}")
    path = out_dir / "head.pt"
    torch.save(
        {
            "head": head.state_dict(),
            "head_config": cfg.to_dict(),
            "threshold": threshold,
            "validation": {**final, "epoch": best["epoch"]},
            "calibration": calibration,
            "history": history,
            **extra,
        },
        path,
    )
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    return path


def load_head(path: Path) -> tuple[TrunkHead, dict]:
    """A head checkpoint back as (module in eval mode, the checkpoint's other fields)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    head = TrunkHead(HeadConfig(**state["head_config"]))
    head.load_state_dict(state["head"])
    return head.eval(), state


def classifier_hash(path: Path) -> str:
    return sha256_file(path)
