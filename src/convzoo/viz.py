"""Pictures written as PNG files with matplotlib.

Figures are built with the object-oriented API (``Figure`` + the Agg canvas), never pyplot:
nothing here opens a window, needs a display, or changes the backend of a notebook that imports
convzoo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["image_grid", "to_display"]


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
    path: str | os.PathLike = "grid.png",
    title: str | None = None,
    *,
    scale: float = 1.5,
    dpi: int = 100,
) -> Path:
    """Save images in a ``rows`` x ``cols`` grid as a PNG, each with its label above it, and
    return the path.

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
    fig = Figure(figsize=(cols * scale, rows * scale + top), dpi=dpi)
    FigureCanvasAgg(fig)
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
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path
