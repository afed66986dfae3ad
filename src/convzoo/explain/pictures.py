"""The pictures of an :class:`~convzoo.explain.explanation.Explanation`, as PNG bytes.

matplotlib's object-oriented API on the Agg canvas, as in :mod:`convzoo.viz`: no window, no
pyplot state. Small maps are drawn with nearest-neighbour interpolation so that a 3 x 3 map
shows its 9 values rather than a blur.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..viz import to_display

if TYPE_CHECKING:  # the explanation shows itself through this module
    from .explanation import Explanation, StageView

#: at most this many filters / bars are drawn (the page says how many there are)
MAX_FILTERS = 64
MAX_BARS = 20
#: attribution maps are coloured up to this quantile of their values
CLIP = 0.99
DPI = 100


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _show_image(ax, pixels: torch.Tensor) -> None:
    shown = to_display(pixels)
    ax.imshow(
        shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_axis_off()


def input_png(e: Explanation) -> bytes:
    """The image at the network's input size, de-normalized to pixels in [0, 1]."""
    fig = _figure(3, 3)
    ax = fig.subplots()
    _show_image(ax, e.pixels)
    ax.set_title(" x ".join(map(str, e.image.shape)), fontsize=10)
    return _png(fig)


def filters_png(e: Explanation) -> bytes:
    """The first convolution's filters: RGB for 3 input channels (each filter stretched to
    [0, 1]); otherwise the mean over input channels, blue negative, red positive, one scale."""
    w = e.filters[:MAX_FILTERS]
    n = len(w)
    cols = min(n, 16)
    rows = math.ceil(n / cols)
    fig = _figure(0.7 * cols + 1.0, 0.7 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    rgb = w.shape[1] == 3
    gray = w.mean(1)
    limit = float(gray.abs().max()) or 1.0
    im = None
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        if rgb:
            f = w[k]
            f = (f - f.min()) / (f.max() - f.min()).clamp_min(1e-12)
            ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            im = ax.imshow(
                gray[k].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
            )
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02, pad=0.02, label="weight")
    return _png(fig)


def stage_png(stage: StageView, k: int) -> bytes:
    """The ``k`` most active feature maps of a stage, on one colour scale."""
    channels, maps = stage.top_maps(k)
    n = len(channels)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = _figure(1.4 * cols + 0.8, 1.5 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    lo, hi = float(maps.min()), float(maps.max())
    means = maps.flatten(1).mean(1).tolist()
    im = None
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= n:
            continue
        im = ax.imshow(
            maps[j].numpy(),
            cmap="viridis",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            interpolation="nearest",
        )
        ax.set_title(f"ch {channels[j]}  mean {means[j]:.2g}", fontsize=8)
    fig.colorbar(im, ax=axes, fraction=0.025, pad=0.02, label="activation")
    return _png(fig)


def shown_classes(e: Explanation) -> list[int]:
    """Every class when there are few; else the most probable ones and the true class."""
    if len(e.classes) <= MAX_BARS:
        return list(range(len(e.classes)))
    top = e.probs.argsort(descending=True)[:MAX_BARS].tolist()
    if e.label is not None and e.label not in top:
        top[-1] = e.label
    return sorted(top)


def scores_png(e: Explanation) -> bytes:
    """Class probabilities as horizontal bars; the prediction in blue, the true class named."""
    shown = shown_classes(e)
    probs = e.probs[shown].tolist()
    fig = _figure(6.5, 0.32 * len(shown) + 0.9)
    ax = fig.subplots()
    colors = ["tab:blue" if c == e.predicted else "0.7" for c in shown]
    ys = range(len(shown))
    ax.barh(ys, probs, color=colors)
    labels = [e.classes[c] + ("  (true)" if c == e.label else "") for c in shown]
    ax.set_yticks(list(ys), labels=labels)
    for tick, c in zip(ax.get_yticklabels(), shown):
        if c == e.label:
            tick.set_fontweight("bold")
    for y, p in zip(ys, probs):
        ax.text(min(p, 1.0) + 0.01, y, f"{p:.3f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability (softmax of the logits)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _png(fig)


def map_title(e: Explanation, c: int) -> str:
    role = "predicted" if c == e.predicted else "true class"
    if c == e.predicted and c == e.label:
        role = "predicted = true class"
    return f"{e.classes[c]}\n({role}, p {float(e.probs[c]):.3f})"


def heat(values: torch.Tensor, vmax: float, cmap: str = "jet"):
    """RGBA overlay of a non-negative map: colour by value, opacity rising with the value, so
    that where the map is 0 the image shows through untouched."""
    from matplotlib import colormaps

    v = (values / vmax).clamp(0, 1).numpy()
    rgba = colormaps[cmap](v)
    rgba[..., 3] = 0.75 * v**0.5
    return rgba


def maps_png(e: Explanation, maps: dict[int, torch.Tensor], label: str) -> bytes:
    """The input, then each class's map over it, on one colour scale for all maps: 0 to the
    99th percentile of their values (a few extreme pixels would otherwise leave the rest
    invisible; the colour bar's arrow marks the clipped top), so a weaker map looks weaker."""
    fig = _figure(3.2 * (len(maps) + 1) + 0.6, 3.6)
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    _show_image(axes[0], e.pixels)
    axes[0].set_title("input", fontsize=10)
    values = torch.stack(list(maps.values()))
    hi = float(values.flatten().quantile(CLIP)) or float(values.max()) or 1.0
    for ax, (c, m) in zip(axes[1:], maps.items()):
        _show_image(ax, e.pixels)
        ax.imshow(heat(m, hi), interpolation="nearest")
        ax.set_title(map_title(e, c), fontsize=10)
    scale = ScalarMappable(Normalize(0, hi), cmap="jet")
    extend = "max" if float(values.max()) > hi else "neither"
    fig.colorbar(scale, ax=list(axes), fraction=0.02, pad=0.02, label=label, extend=extend)
    return _png(fig)
