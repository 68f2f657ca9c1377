"""PNGs people would rather look at than read: curves, confusion matrices, misclassified digits."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_training_curves(history: list[dict], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation."""
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="train")
    ax2.plot(epochs, [100 * h["val_acc"] for h in history], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(cm: np.ndarray, path: Path, title: str = "") -> Path:
    """Counts (true rows x predicted columns), off-diagonal cells highlighted."""
    fig, ax = plt.subplots(figsize=(7, 6))
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    ax.imshow(np.log1p(off), cmap="Reds")
    for i in range(10):
        for j in range(10):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if i != j else "tab:green",
                fontweight="bold" if i == j else None,
            )
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_digit_grid(images: np.ndarray, captions: list[str], path: Path, title: str = "", cols: int = 12) -> Path:
    """A grid of 28x28 digits (N, 28, 28) uint8 with a caption under each."""
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(cap, fontsize=7)
    fig.suptitle(title or f"{len(images)} images")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
