"""Color jitter as batched, per-sample operations: brightness, contrast, saturation, hue.

Each ``adjust_*`` takes images N x C x H x W in [0, 1] and one factor per image (N,) and matches
torchvision.transforms.v2.functional's ``adjust_*`` applied image by image (see the tests);
:class:`ColorJitter` draws the factors and a random order per image, as torchvision's does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .draw import uniform


# Each takes images N x C x H x W in [0, 1] and one factor per image (N,); each matches
# torchvision.transforms.v2.functional's adjust_* applied image by image (see the tests).
def _per_image(f: torch.Tensor) -> torch.Tensor:
    return f.view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma N x 1 x H x W with torchvision's weights (ITU-R 601-2)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = _per_image(f)
    return (x * f + other * (1 - f)).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * _per_image(f)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else _blend(x, _gray(x), f)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of each image by ``f`` (in turns, [-0.5, 0.5]).

    torchvision converts to HSV and back; we keep its arithmetic in closed form: value = max,
    value x saturation = max - min, and channel n (5 = R, 3 = G, 1 = B) of the result is
    ``max - (max - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 * hue) mod 6``."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # (aminmax over dim 1 is 50x slower on CPU)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    d = torch.where(delta == 0, torch.ones_like(delta), delta)  # gray pixels: any hue will do
    sextant = torch.where(maxc == r, g - b, torch.where(maxc == g, 2 * d + b - r, 4 * d + r - g))
    hue6 = sextant / d + 6.0 * f.view(-1, 1, 1)  # hue in sixths of a turn, shifted
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + hue6.unsqueeze(1)).remainder_(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    return (maxc.unsqueeze(1) - delta.unsqueeze(1) * ramp).clamp_(0, 1)


_JITTER_OPS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_hue,
)


@dataclass(frozen=True)
class ColorJitter:
    """torchvision ``ColorJitter(brightness, contrast, saturation, hue)`` per image: factors
    uniform in ``[max(0, 1 - b), 1 + b]`` (hue: ``[-hue, hue]``), the four adjustments applied
    in a random order drawn per image, as torchvision does per call. Saturation and hue leave
    1-channel images alone (as torchvision and PIL do)."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def _ranges(self, channels: int) -> list[tuple[int, float, float]]:
        out = []
        for i, v in enumerate((self.brightness, self.contrast, self.saturation)):
            if v > 0 and (i < 2 or channels > 1):
                out.append((i, max(0.0, 1 - v), 1 + v))
        if self.hue > 0 and channels > 1:
            out.append((3, -self.hue, self.hue))
        return out

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        ranges = self._ranges(x.shape[1])
        n, k = len(x), len(ranges)
        if k == 0 or n == 0:
            return x
        lo = torch.tensor([r[1] for r in ranges], device=x.device, dtype=x.dtype)
        hi = torch.tensor([r[2] for r in ranges], device=x.device, dtype=x.dtype)
        factors = lo + uniform(g, (n, k), x.device).to(x.dtype) * (hi - lo)  # N x k
        order = uniform(g, (n, k), x.device).argsort(dim=1)  # a random permutation per image
        x = x.clone()
        # Stage s applies, to each image, the op its permutation puts at s: k * k subset updates
        # (not a loop over samples), each image visiting each op once.
        for stage in range(k):
            for j, (op, _, _) in enumerate(ranges):
                idx = (order[:, stage] == j).nonzero().squeeze(1)
                if len(idx):
                    fn = _JITTER_OPS[op]
                    x.index_copy_(0, idx, fn(x.index_select(0, idx), factors[idx, j]))
        return x

    def __str__(self) -> str:
        return f"jitter:{self.brightness:g}:{self.contrast:g}:{self.saturation:g}:{self.hue:g}"
