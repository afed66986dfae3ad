"""Batch normalization from scratch: the chapter's 批量规范化, as working code.

``lenet_bn`` is built with it; ``norm="torch"`` swaps in PyTorch's ``nn.BatchNorm1d/2d``, which it
matches to 1e-5 in outputs, running statistics and gradients (``tests/test_batchnorm.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNorm(nn.Module):
    """Batch normalization written out as in the book's section on batch norm.

    Training: normalise each channel with the mean and (biased) variance of the current batch,
    then scale by ``weight`` (the book's gamma) and shift by ``bias`` (beta), and move the running
    estimates towards the batch statistics. Evaluation: normalise with the running estimates.

    Works on fully connected outputs (N x C), sequence features (N x C x L) and feature maps
    (N x C x H x W). Parameter and buffer names are those of ``nn.BatchNorm1d/2d`` so state dicts
    are interchangeable.

    Two conventions follow PyTorch rather than the book's code so that the module matches
    ``nn.BatchNorm2d`` exactly: ``momentum`` is the weight of the *new* batch (PyTorch's 0.1 is
    the book's ``momentum=0.9``), and the running variance is updated with the unbiased batch
    variance (the book uses the biased one; both normalise the batch with the biased one).
    Statistics are computed in float32 even under bf16/fp16 autocast.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3, 4) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm({self.num_features}) expects N x {self.num_features}, "
                f"N x {self.num_features} x L or N x {self.num_features} x H x W, "
                f"got {tuple(x.shape)}"
            )
        dims = (0, *range(2, x.dim()))  # every axis but the channels
        shape = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.float()
        if self.training:
            # the batch's mean and biased variance per channel (two passes: torch.var_mean is
            # 15-70x slower than these reductions on the CPU here)
            mean = xf.mean(dim=dims)
            var = (xf - mean.view(shape)).square().mean(dim=dims)
            n = xf.numel() // self.num_features
            with torch.no_grad():
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                unbiased = var * (n / max(n - 1, 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean.float(), self.running_var.float()
        # gamma * (x - mean) / sqrt(var + eps) + beta, with the per-channel factors folded first
        # so that only one multiply-add touches the whole tensor (autograd differentiates the
        # same expression with fewer full-size tensors)
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        y = torch.addcmul(shift.view(shape), xf, scale.view(shape))
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
