"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation, folded into the graph.

A softmax over logits / T keeps every argmax (accuracy is unchanged) and makes `confidence` mean
what it says: of the answers given with 0.9, about 90% are right. T is fitted by minimising the
validation negative log-likelihood; expected calibration error (ECE) is reported on test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ECE_BINS = 15


class Calibrated(nn.Module):
    """model(x) / T: the exported graph's logits, so softmax(logits) is the calibrated probability."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature  # (N, 10)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimises NLL(softmax(logits / T), labels); logits (N, 10) float."""
    log_t = torch.zeros(1, requires_grad=True)  # T = exp(log_t) stays positive
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    logits, labels = logits.detach().double(), labels.detach()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.double().exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """ECE and the per-bin table behind the reliability diagram; probs (N, 10), labels (N,)."""
    conf, pred = probs.max(1), probs.argmax(1)
    right = pred == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if not m.any():
            continue
        acc, mean_conf = float(right[m].mean()), float(conf[m].mean())
        ece += m.mean() * abs(acc - mean_conf)
        table.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                      "accuracy": acc, "confidence": mean_conf})  # fmt: skip
    return {"ece": float(ece), "bins": table, "mean_confidence": float(conf.mean()), "accuracy": float(right.mean())}


def low_confidence_threshold(probs: np.ndarray, labels: np.ndarray, flag_share: float = 0.01) -> dict:
    """The highest threshold (0.50-0.99, step 0.01) that flags at most `flag_share` of these answers.

    MNIST_LOW_CONFIDENCE's default: on clean digits about 1% of answers count as low-confidence, so
    a rise of the metric in production means the traffic has moved away from what the model knows.
    """
    conf, right = probs.max(1), probs.argmax(1) == labels
    best = 0.5
    for t in np.round(np.arange(0.50, 1.00, 0.01), 2):
        if (conf < t).mean() <= flag_share:
            best = float(t)
    low = conf < best
    return {"threshold": best, "flagged": float(low.mean()), "flag_share_allowed": flag_share,
            "errors_flagged": float(low[~right].mean()) if (~right).any() else 0.0,
            "accuracy_when_flagged": float(right[low].mean()) if low.any() else None}  # fmt: skip


def plot_reliability(curves: dict[str, dict], path: Path, title: str = "") -> Path:
    """Accuracy against confidence per bin (bar width = bin), one panel per curve, ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.5), squeeze=False)
    for ax, (name, rel) in zip(axes[0], curves.items(), strict=True):
        lo = np.array([b["lo"] for b in rel["bins"]])
        width = np.array([b["hi"] - b["lo"] for b in rel["bins"]])
        acc = np.array([b["accuracy"] for b in rel["bins"]])
        conf = np.array([b["confidence"] for b in rel["bins"]])
        ax.bar(lo, acc, width, align="edge", edgecolor="k", alpha=0.7, label="accuracy in bin")
        ax.bar(lo, conf - acc, width, bottom=acc, align="edge", color="tab:red", alpha=0.35, label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for b in rel["bins"]:
            ax.annotate(f"{b['n']}", ((b["lo"] + b["hi"]) / 2, 0.02), ha="center", fontsize=6, rotation=90)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (max probability)",
            ylabel="accuracy",
            title=f"{name}\nECE {100 * rel['ece']:.2f}%, mean confidence {100 * rel['mean_confidence']:.2f}%",
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
