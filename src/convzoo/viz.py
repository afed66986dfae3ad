"""Pictures instead of walls of numbers: training curves, confusion matrices, image grids,
time-series grids.

Figures are built with matplotlib's object-oriented API (``Figure`` + the Agg canvas), never
pyplot: nothing here opens a window, needs a display, or changes the backend of a notebook that
imports convzoo. Every file is written atomically (a crash never leaves half a PNG).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .io import atomic_path

__all__ = [
    "image_grid",
    "plot_confusion",
    "plot_curves",
    "plot_lr_find",
    "plot_runs",
    "series_grid",
    "to_display",
]


def _save(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


class NotebookFigure(Figure):
    """A figure that Jupyter shows when it is a cell's value, whichever matplotlib backend
    is active (pyplot is never involved, so nothing else would display it)."""

    def _repr_png_(self, tight: bool = True) -> bytes:
        """The PNG, cropped to what is drawn (``tight``: one more drawing pass)."""
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight" if tight else None)
        return buf.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = NotebookFigure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def to_display(image: torch.Tensor):
    """One image (C x H x W, float in [0, 1] or uint8; C = 1 or 3) as a numpy array for
    ``imshow``: H x W for gray, H x W x 3 for colour, float in [0, 1]."""
    x = image.detach().cpu()
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


def image_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    labels: Sequence[str] | None = None,
    rows: int | None = None,
    cols: int | None = None,
    path: str | os.PathLike | None = "grid.png",
    title: str | None = None,
    *,
    scale: float = 1.5,
    dpi: int = 100,
) -> Path | Figure:
    """Save images in a ``rows`` x ``cols`` grid as a PNG, each with its label above it, and
    return the path (``path=None``: return the figure, which a notebook shows).

    ``images`` is an N x C x H x W tensor or a sequence of C x H x W tensors (sizes may differ),
    float in [0, 1] or uint8. Each cell is ``scale`` inches square (``scale * dpi`` pixels,
    150 px by default, as the book's ``show_images``); a title adds ``0.4`` inch on top. By
    default ``cols = min(N, 8)`` and rows as many as needed; cells beyond ``N`` stay empty.
    """
    images = list(images)
    n = len(images)
    if cols is None:
        cols = max(1, min(n, 8)) if rows is None else max(1, math.ceil(n / rows))
    if rows is None:
        rows = max(1, math.ceil(n / cols))
    top = 0.4 if title else 0.0
    fig = _figure(cols * scale, rows * scale + top)
    fig.set_dpi(dpi)
    height = rows * scale + top
    fig.subplots_adjust(
        left=0.02, right=0.98, bottom=0.02, top=1 - (top + 0.22) / height, wspace=0.1, hspace=0.3
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        pixels = to_display(images[k])
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1)
        if labels is not None and k < len(labels):
            ax.set_title(str(labels[k]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is None:
        return fig
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def series_grid(
    series: torch.Tensor,
    labels: Sequence[str] | None = None,
    rows: int = 2,
    cols: int = 5,
    path: str | os.PathLike = "series.png",
    title: str | None = None,
) -> Path:
    """Save time series (N x C x L) as a ``rows`` x ``cols`` grid of line plots, each with its
    label above it, its channels drawn in the same colours in every cell, one y range for all
    (so amplitudes compare); cells beyond N stay empty. Returns the path."""
    x = series.detach().cpu().float()
    fig = _figure(cols * 2.2, rows * 1.6 + (0.4 if title else 0))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    steps = range(x.shape[-1])
    for k, ax in enumerate(axes.flat):
        if k >= len(x):
            ax.set_axis_off()
            continue
        for c, channel in enumerate(x[k]):
            ax.plot(steps, channel.numpy(), lw=0.9, color=f"C{c % 10}")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if labels is not None and k < len(labels):
            ax.set_title(str(labels[k]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def plot_curves(history, path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
    """Loss (left) and accuracy (right) per epoch, train, validation and test, like the book's
    animator; saved as a PNG at ``path`` when given. The figure is returned (a notebook shows
    it). The marked epoch is the best by validation accuracy (what a run keeps); the test curve
    is only reported, never used to choose.

    ``history`` is a :class:`convzoo.train.History` (anything with ``column(name)``).
    """
    epochs = history.column("epoch")
    fig = _figure(10, 3.8)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, history.column("loss"), "o-", label="train loss")
    ax_acc.plot(epochs, history.column("train_acc"), "o-", label="train acc")
    for name, style in (("val", "^-."), ("test", "s--")):
        for ax, kind in ((ax_loss, "loss"), (ax_acc, "acc")):
            values = history.column(f"{name}_{kind}")
            if not all(math.isnan(v) for v in values):
                ax.plot(epochs, values, style, label=f"{name} {kind}")
    val_acc = history.column("val_acc")
    if not all(math.isnan(v) for v in val_acc):
        _mark_best(ax_acc, epochs, val_acc)
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        pad = 0.2 if len(epochs) > 1 else 0.5
        ax.set_xlim(min(epochs, default=1) - pad, max(epochs, default=1) + pad)
        # one tick may be enough: whole epochs only, even for a run of one
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if title:
        fig.suptitle(title)
    # fixed margins: tight_layout took a third of a redraw (0.1 of 0.3 s on the 2-core CPU)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.84 if title else 0.9, wspace=0.2)
    if path is not None:
        _save(fig, path)
    return fig


def _mark_best(ax, epochs: Sequence[float], val_acc: Sequence[float]) -> None:
    """Circle the best validation epoch, named in the legend (a label in the plot covers curves)."""
    best = max((i for i, v in enumerate(val_acc) if not math.isnan(v)), key=lambda i: val_acc[i])
    label = f"kept: best val {val_acc[best]:.4f}"
    ax.plot([epochs[best]], [val_acc[best]], "o", mfc="none", ms=12, color="black", label=label)


def plot_lr_find(result, path: str | os.PathLike, title: str | None = None) -> Path:
    """The learning-rate finder's sweep: training loss against lr (log scale), raw and
    smoothed, with the suggested lr and the minimum marked. ``result``: a
    :class:`convzoo.train.lr_find.LrFind`."""
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss per step")
    ax.plot(result.lrs, result.smoothed, lw=2, label="smoothed")
    for lr, style, name in ((result.steepest, "-", "suggested"), (result.minimum, ":", "minimum")):
        ax.axvline(lr, ls=style, color="C3", lw=1.2, label=f"{name} {lr:.3g}")
    ax.set_xscale("log")
    low = min(min(result.smoothed), min(result.losses))
    high = max(result.smoothed[: max(len(result.smoothed) // 2, 1)])
    ax.set_ylim(low - 0.1 * (high - low), high + 0.3 * (high - low))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "learning-rate finder")
    fig.tight_layout()
    return _save(fig, path)


def plot_runs(
    runs: Sequence[tuple[str, dict[str, Sequence[float]]]],
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Path | Figure:
    """Several runs overlaid: training loss (left) and accuracy (right) per epoch, saved as a
    PNG at ``path`` (returned); without ``path`` the figure is returned (a notebook shows it).

    ``runs`` holds ``(label, columns)`` pairs, ``columns`` a history's columns by name
    (``epoch``, ``loss``, ``train_acc``, ``test_acc``, optionally ``val_acc``) or a
    :class:`convzoo.History`. Runs with the same label (seeds of one recipe) share a colour
    and one legend entry: test accuracy solid, validation dotted, training accuracy dashed and
    thin.
    """
    fig = _figure(10, 3.8)
    ax_loss, ax_acc = fig.subplots(1, 2)
    colours: dict[str, str] = {}
    kinds = (  # panel, column, style, legend name, line width
        (ax_loss, "loss", "o-", "train loss", 1.6),
        (ax_acc, "test_acc", "o-", "test", 1.6),
        (ax_acc, "val_acc", ":", "validation", 1.6),
        (ax_acc, "train_acc", "--", "train", 0.9),
    )
    for label, cols in runs:
        if not isinstance(cols, dict):  # a History
            keys = ("epoch", "loss", "train_acc", "val_acc", "test_acc")
            cols = {k: cols.column(k) for k in keys}
        first = label not in colours
        colour = colours.setdefault(label, f"C{len(colours)}")
        for ax, key, style, name, width in kinds:
            values = cols.get(key)
            if values and not all(math.isnan(v) for v in values):
                legend = f"{label} {name}" if first else None
                ax.plot(cols["epoch"], values, style, color=colour, lw=width, label=legend)
    for ax, name in ((ax_loss, "cross-entropy"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.set_title("training loss")
    ax_acc.set_title("accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig if path is None else _save(fig, path)


def plot_confusion(
    matrix: torch.Tensor,
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Confusion matrix: rows are true classes, columns predictions; cells show counts and are
    coloured by the share of their row (per-class recall on the diagonal)."""
    m = matrix.to(torch.float64)
    k = m.shape[0]
    share = m / m.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(5.0, 0.55 * k + 2)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
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
    return _save(fig, path)
