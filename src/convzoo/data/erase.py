"""Random erasing (Zhong et al. 2017), torchvision's ``RandomErasing`` as a batched,
per-sample op: a rectangle per image, one masked fill for the batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .draw import randint, uniform

__all__ = ["Erase"]


# -- random erasing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Erase:
    """torchvision ``RandomErasing(p, scale, ratio, value=0)`` per image (Zhong et al. 2017).

    Parameters are drawn as torchvision's ``get_params`` does: up to 10 tries of an area
    fraction in ``scale`` and a log-uniform aspect ratio (height / width) in ``ratio``; the
    first rectangle smaller than the image wins, at a uniformly random place; if none fits, the
    image is kept. All tries of all images at once, and one masked fill for the batch.
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    tries: int = 10

    def params(self, n: int, h: int, w: int, g: torch.Generator, device=None) -> torch.Tensor:
        """Rectangles as an N x 4 int64 tensor of (top, left, height, width) in pixels; height
        and width 0 where the image is kept."""
        device = device or g.device
        u = uniform(g, (2, n, self.tries), device)
        area = h * w * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + u[1] * (hi - lo))
        eh = torch.sqrt(area * aspect).round().long()
        ew = torch.sqrt(area / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.int().argmax(dim=1, keepdim=True)  # first try that fits
        eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
        on = fits.any(dim=1) & (uniform(g, (n,), device) < self.p)
        eh, ew = torch.where(on, eh, 0), torch.where(on, ew, 0)
        return torch.stack([randint(g, h - eh), randint(g, w - ew), eh, ew], dim=1)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if n == 0:
            return x
        top, left, eh, ew = self.params(n, h, w, g, x.device).unbind(1)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # N x H
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # N x W
        return x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)

    def __str__(self) -> str:
        s, r = self.scale, self.ratio
        return f"erase:{self.p:g}:{s[0]:g}-{s[1]:g}:{r[0]:g}-{r[1]:g}"
