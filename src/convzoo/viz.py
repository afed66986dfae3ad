"""Pictures instead of walls of numbers: training curves, confusion matrices, image grids.

Matplotlib with the Agg backend (no display needed); every file is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from .io import atomic_path


def _save(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: Any, path: str | os.PathLike, title: str | None = None) -> None:
    """Loss (left) and accuracy (right) per epoch, train and test, like the book's animator."""
    epochs = history.column("epoch")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, history.column("loss"), "o-", label="train loss")
    test_loss = history.column("test_loss")
    if not all(math.isnan(v) for v in test_loss):
        ax_loss.plot(epochs, test_loss, "s--", label="test loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, history.column("train_acc"), "o-", label="train acc")
    test_acc = history.column("test_acc")
    if not all(math.isnan(v) for v in test_acc):
        ax_acc.plot(epochs, test_acc, "s--", label="test acc")
        best = max(range(len(test_acc)), key=lambda i: test_acc[i])
        ax_acc.annotate(
            f"{test_acc[best]:.4f}",
            (epochs[best], test_acc[best]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
        )
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) > 1:
            ax.set_xlim(min(epochs) - 0.2, max(epochs) + 0.2)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(
    matrix: torch.Tensor,
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Confusion matrix: rows are true classes, columns predictions; cells show counts and are
    coloured by the share of their row (per-class recall on the diagonal)."""
    m = matrix.to(torch.float64)
    k = m.shape[0]
    share = m / m.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(5.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                v = int(m[i, j])
                if v:
                    ax.text(
                        j,
                        i,
                        str(v),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
        ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
        ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = float(m.diag().sum() / m.sum().clamp_min(1))
    ax.set_title(title or f"confusion matrix (accuracy {acc:.4f})")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    _save(fig, path)
