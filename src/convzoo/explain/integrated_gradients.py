"""Integrated Gradients (Sundararajan et al., 2017, https://arxiv.org/abs/1703.01365): which
input pixels raise a class's score.

The attribution of pixel ``i`` is ``(x_i - b_i)`` times the gradient of the class's logit
averaged along the straight path from a baseline image ``b`` (black: every pixel 0 before
normalization) to the image ``x``. Its sum over the pixels is the logit's change from the
baseline to the image (completeness), and a pixel that does not affect the network gets 0.
We show its positive part summed over colour channels: the evidence *for* the class.

Why it is on the page next to the layer map: in the deletion and insertion games on 500
Fashion-MNIST test images (speednet, 2 epochs) it beat every layer map: deletion 0.172 against
0.239-0.249 for the best layer maps and 0.365 for a random map, insertion 0.623 against
0.420-0.432 and 0.371 (benchmarks/RESULTS.md, "explain: attribution"). The layer maps are
coarse (3 x 3 at speednet's last stage) and show *where the stage* looks; this shows *which
pixels* count.

Own code (the midpoint Riemann sum below) rather than captum's ``IntegratedGradients``: the
same sum (``method="riemann_middle"``: largest difference 3e-7 on 500 images, captum 1.05x
our time) in 15 lines, so captum stays an optional extra that the tests compare with.
"""

from __future__ import annotations

import torch
from torch import nn

#: path steps. The completeness gap (|sum of attributions - logit change| / |logit change|,
#: median over 100 Fashion-MNIST test images, speednet) was 8.3% with 8 steps, 3.7% with 16,
#: 1.6% with 32 and 1.0% with 64; the paper asks for under 5%
STEPS = 32


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    baseline: torch.Tensor,
    steps: int = STEPS,
) -> torch.Tensor:
    """``N x H x W`` positive Integrated Gradients of ``model`` (eval mode) for class
    ``targets[n]`` of image ``x[n]``; ``baseline`` broadcasts to ``x`` (the network's input
    for a black image)."""
    targets = targets.view(-1, 1).to(x.device)
    delta = x - baseline
    total = torch.zeros_like(x)
    with torch.enable_grad():
        for k in range(steps):  # one batch per step: memory of one forward pass
            point = (baseline + (k + 0.5) / steps * delta).detach().requires_grad_(True)
            score = model(point).gather(1, targets).sum()
            (grad,) = torch.autograd.grad(score, point)
            total += grad
    return (delta * total / steps).sum(1).clamp_min(0).detach()
