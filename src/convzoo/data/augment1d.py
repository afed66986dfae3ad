"""Augmentations for time series (N x C x L) as batched, per-sample operations on the device.

The sequence counterpart of :mod:`convzoo.data.augment`, with the same contract: each op takes
a float batch and a ``torch.Generator``, draws its own parameters for every series of the batch
from that generator (so a batch is reproducible from the loader's seed), and runs a handful of
kernels with no Python loop over samples.

Spec grammar (one string, like the image ops)::

    SPEC     := "" | "none" | OP ("," OP)*        applied left to right
    shift:MAX        move each series by a uniform whole number of steps in [-MAX, MAX],
                     its first or last value repeated into the steps left empty (the 1-D
                     ``crop:PAD`` of images, with edge padding instead of zeros)
    crop[:FRAC]      window slicing (Le Guennec et al., 2016): a random window of FRAC of the
                     length (default 0.9) stretched back to the full length by linear
                     interpolation
    scale:LO-HI      multiply each series (all its channels) by a factor uniform in [LO, HI]
    jitter:SIGMA     add Gaussian noise of standard deviation SIGMA to every value

For example ``"shift:15,scale:0.8-1.2,jitter:0.03"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .augment import Compose, _range, parse_ops
from .draw import randint, uniform

__all__ = ["Jitter", "Scale", "Shift", "WindowCrop", "parse_augment1d"]


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[n, c, index[n, t]]`` for every series n, channel c and step t (one gather)."""
    n, c, _ = x.shape
    return x.gather(2, index[:, None, :].expand(n, c, index.shape[1]))


@dataclass(frozen=True)
class Shift:
    """Shift each series by ``s`` steps, ``s`` uniform in ``[-max_steps, max_steps]``: step t
    of the output is step ``t - s`` of the input, the nearest end where that falls outside.

    The ends are repeated rather than zeros shifted in (as images pad): a series' ends often
    sit away from its mean (GunPoint's rest at about -0.6 after z-normalisation), and zeros
    would add a step there that no real series has."""

    max_steps: int

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, length = x.shape
        if self.max_steps == 0 or n == 0:
            return x
        span = torch.tensor(2 * self.max_steps, device=x.device)
        s = randint(g, span, (n,)) - self.max_steps  # N
        src = torch.arange(length, device=x.device) - s[:, None]  # N x L
        return _take(x, src.clamp_(0, length - 1))

    def __str__(self) -> str:
        return f"shift:{self.max_steps}"


@dataclass(frozen=True)
class WindowCrop:
    """Window slicing: a window of ``fraction`` of the series (a uniform start per series),
    resampled to the full length by linear interpolation between neighbouring steps."""

    fraction: float = 0.9

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, length = x.shape
        if self.fraction == 1 or length < 2 or n == 0:
            return x
        width = self.fraction * (length - 1)  # window span, in steps between its ends
        start = uniform(g, (n,), x.device) * (length - 1 - width)  # N
        t = torch.arange(length, device=x.device, dtype=x.dtype) * (width / (length - 1))
        pos = start.to(x.dtype)[:, None] + t  # N x L, positions in the input
        lo = pos.floor().long().clamp_(0, length - 1)
        hi = (lo + 1).clamp_(max=length - 1)
        w = (pos - lo.to(x.dtype))[:, None, :]
        return torch.lerp(_take(x, lo), _take(x, hi), w)

    def __str__(self) -> str:
        return f"crop:{self.fraction:g}"


@dataclass(frozen=True)
class Scale:
    """Multiply each series by a factor uniform in ``[low, high]`` (one per series)."""

    low: float
    high: float

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        f = self.low + uniform(g, (len(x),), x.device).to(x.dtype) * (self.high - self.low)
        return x * f.view(-1, 1, 1)

    def __str__(self) -> str:
        return f"scale:{self.low:g}-{self.high:g}"


@dataclass(frozen=True)
class Jitter:
    """Add Gaussian noise of standard deviation ``sigma`` to every value."""

    sigma: float

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        # drawn on the generator's device, like every op's parameters, then moved
        noise = torch.randn(x.shape, generator=g, device=g.device)
        return x + self.sigma * noise.to(device=x.device, dtype=x.dtype)

    def __str__(self) -> str:
        return f"jitter:{self.sigma:g}"


def _one(args: list[str], what: str) -> str:
    if len(args) != 1 or not args[0]:
        raise ValueError(f"needs {what}")
    return args[0]


def _shift(args: list[str]) -> Shift:
    steps = int(_one(args, "MAX"))
    if steps < 0:
        raise ValueError("MAX must be >= 0 steps")
    return Shift(steps)


def _crop(args: list[str]) -> WindowCrop:
    fraction = float(_one(args, "FRAC")) if args else 0.9
    if not 0 < fraction <= 1:
        raise ValueError("FRAC must be in (0, 1]")
    return WindowCrop(fraction)


def _scale(args: list[str]) -> Scale:
    return Scale(*_range(_one(args, "LO-HI"), positive=True))


def _jitter(args: list[str]) -> Jitter:
    sigma = float(_one(args, "SIGMA"))
    if not sigma >= 0:  # also refuses nan
        raise ValueError("SIGMA must be >= 0")
    return Jitter(sigma)


_OPS = {
    "shift": (_shift, "shift:MAX"),
    "crop": (_crop, "crop[:FRAC]"),
    "scale": (_scale, "scale:LO-HI"),
    "jitter": (_jitter, "jitter:SIGMA"),
}


def parse_augment1d(spec: str | None) -> Compose | None:
    """The sequence augmentation a spec string describes (grammar in the module docstring);
    ``None`` for ``""``/``"none"``. Bad parts raise a one-line
    :class:`~convzoo.data.augment.AugmentSpecError` naming them and the grammar."""
    return parse_ops(spec, _OPS)
