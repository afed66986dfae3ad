"""The pictures of a sequence model's :class:`~convzoo.explain.explanation.Explanation`: the
1-D counterparts of :mod:`.pictures` (the class scores are drawn by the same function).

A series is drawn as lines over time; what is an image of a layer in 2-D (filters, a stage's
channels, an attribution map) is a strip or a heat map with time on the x axis, so the eye can
go from a bump in the input straight down to what each layer made of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from .pictures import CLIP, MAX_FILTERS, _figure, _png, map_title

if TYPE_CHECKING:  # the explanation shows itself through this module
    from .explanation import Explanation, StageView

#: width of the figures whose x axis is time (inches), so that they line up on the page
WIDTH = 8.0


def _lines(ax, series: torch.Tensor) -> None:
    """Every channel of a C x L series as a line, the same colours in every figure."""
    steps = range(series.shape[-1])
    for c, channel in enumerate(series):
        ax.plot(steps, channel.numpy(), lw=1.0, color=f"C{c % 10}", label=f"channel {c}")
    ax.set_xlim(0, max(series.shape[-1] - 1, 1))
    ax.grid(alpha=0.3)


def input_png(e: Explanation) -> bytes:
    """The series as the network receives it (before any channel normalization)."""
    fig = _figure(WIDTH, 2.4)
    ax = fig.subplots()
    _lines(ax, e.pixels)
    ax.set_xlabel("step")
    if len(e.pixels) > 1:
        ax.legend(fontsize=7, ncol=min(len(e.pixels), 6), loc="upper right")
    ax.set_title(" x ".join(map(str, e.image.shape)), fontsize=10)
    return _png(fig)


def filters_png(e: Explanation) -> bytes:
    """The first convolution's filters, one column each (its taps top to bottom, in time
    order), averaged over the input channels, blue negative, red positive, one scale."""
    w = e.filters[:MAX_FILTERS].mean(1)  # out x k
    limit = float(w.abs().max()) or 1.0
    fig = _figure(WIDTH, 0.25 * w.shape[1] + 1.0)
    ax = fig.subplots()
    im = ax.imshow(w.T.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("filter")
    ax.set_ylabel("tap")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03, label="weight")
    return _png(fig)


def stage_png(stage: StageView, k: int) -> bytes:
    """The ``k`` most active channels of a stage as rows of one heat map over time."""
    channels, maps = stage.top_maps(k)
    lo, hi = float(maps.min()), float(maps.max())
    fig = _figure(WIDTH, 0.22 * len(channels) + 0.9)
    ax = fig.subplots()
    im = ax.imshow(
        maps.numpy(),
        cmap="viridis",
        vmin=lo,
        vmax=hi if hi > lo else lo + 1,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(range(len(channels)), labels=[f"ch {c}" for c in channels], fontsize=7)
    ax.set_xlabel("step")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="activation")
    return _png(fig)


def maps_png(e: Explanation, maps: dict[int, torch.Tensor], label: str) -> bytes:
    """For each class, the series with its map as a colour band under the lines: one colour
    scale for all maps, 0 to the 99th percentile of their values (as the image maps), so a
    weaker map looks weaker."""
    values = torch.stack(list(maps.values()))
    hi = float(values.flatten().quantile(CLIP)) or float(values.max()) or 1.0
    fig = _figure(WIDTH, 1.9 * len(maps) + 0.3)
    axes = fig.subplots(len(maps), 1, squeeze=False, sharex=True)[:, 0]
    lo_y, hi_y = float(e.pixels.min()), float(e.pixels.max())
    pad = 0.05 * (hi_y - lo_y or 1.0)
    extent = (-0.5, e.pixels.shape[-1] - 0.5, lo_y - pad, hi_y + pad)
    for ax, (c, m) in zip(axes, maps.items()):
        ax.imshow(
            m[None].numpy(),
            cmap="Reds",
            vmin=0,
            vmax=hi,
            aspect="auto",
            extent=extent,
            interpolation="nearest",
        )
        _lines(ax, e.pixels)
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(map_title(e, c).replace("\n", " "), fontsize=9)
    axes[-1].set_xlabel("step")
    extend = "max" if float(values.max()) > hi else "neither"
    scale = ScalarMappable(Normalize(0, hi), cmap="Reds")
    fig.colorbar(scale, ax=list(axes), fraction=0.02, pad=0.02, label=label, extend=extend)
    return _png(fig)
