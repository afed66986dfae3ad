"""Small synthetic data for fast tests (no files, no network)."""

import torch

from convzoo.data import ImageDataset


def toy_dataset(
    n: int,
    *,
    size: int = 16,
    num_classes: int = 4,
    channels: int = 1,
    seed: int = 0,
    split: str = "train",
    name: str = "toy",
) -> ImageDataset:
    """Each class lights up its own square of the image, plus noise: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = torch.randint(0, 60, (n, channels, size, size), generator=g)
    side = size // 2
    for c in range(num_classes):
        r, col = divmod(c % 4, 2)
        x[y == c, :, r * side : (r + 1) * side, col * side : (col + 1) * side] += 150 + 20 * (
            c // 4
        )
    return ImageDataset(
        x.clamp(0, 255).to(torch.uint8),
        y,
        [f"class{c}" for c in range(num_classes)],
        name=name,
        split=split,
    )


def toy_pair(n_train: int = 256, n_test: int = 64, **kw):
    return (toy_dataset(n_train, seed=1, **kw), toy_dataset(n_test, seed=2, split="test", **kw))
