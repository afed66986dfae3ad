"""Seeing the mistakes of a trained network: the classes it confuses most, and the images it
gets most wrong (fastai's ``most_confused`` and ``plot_top_losses``).

Both read the split they are given (the test split by default in ``convzoo evaluate``) only to
report; nothing here feeds back into training or into a choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data.dataset import LabelledData
from .data.sequences import SequenceDataset
from .errors import ConvzooError
from .train.meta import ModelMeta
from .trained import tested_as_in_training


def most_confused(
    confusion: torch.Tensor, classes: list[str], k: int
) -> list[tuple[str, str, int]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix (rows: true, columns:
    predicted) as ``(true class, predicted class, count)``, largest first; pairs never
    confused are left out."""
    cm = confusion.clone().long()
    cm.fill_diagonal_(0)
    counts, flat = cm.flatten().sort(descending=True, stable=True)
    n = cm.shape[1]
    out = []
    for count, i in zip(counts.tolist()[:k], flat.tolist()[:k]):
        if count == 0:
            break
        out.append((classes[i // n], classes[i % n], count))
    return out


@dataclass
class TopLosses:
    """The images with the highest loss: their indices in the data set, losses, the true and
    predicted labels and the probability given to the prediction."""

    indices: list[int]
    losses: list[float]
    true: list[int]
    predicted: list[int]
    probability: list[float]


@torch.no_grad()
def top_losses(
    model: nn.Module,
    meta: ModelMeta,
    data: LabelledData,
    k: int,
    *,
    device: str = "auto",
    batch_size: int = 1024,
) -> TopLosses:
    """The ``k`` images of ``data`` with the highest cross-entropy, computed as the network
    was tested in training (its input size, normalization, precision and flip TTA)."""
    if k < 1:
        raise ConvzooError(f"--top-losses must be >= 1, got {k}")
    _, loader, precision = tested_as_in_training(model, meta, data, device, batch_size)
    model.eval()
    losses, probs = [], []
    for batch in loader:
        with precision.autocast():
            logits = model(batch.x).float()
            if meta.tta:
                logits = (logits + model(batch.x.flip(-1)).float()) / 2
        losses.append(F.cross_entropy(logits, batch.y, reduction="none").cpu())
        probs.append(logits.softmax(1).cpu())
    loss, prob = torch.cat(losses), torch.cat(probs)
    order = loss.argsort(descending=True, stable=True)[:k]
    predicted = prob[order].argmax(1)
    return TopLosses(
        indices=order.tolist(),
        losses=loss[order].tolist(),
        true=data.labels[order].tolist(),
        predicted=predicted.tolist(),
        probability=prob[order].gather(1, predicted[:, None]).squeeze(1).tolist(),
    )


def plot_top_losses(
    top: TopLosses, data: LabelledData, path: str | os.PathLike, title: str | None = None
) -> Path:
    """A gallery of the images (line plots of the series), each labelled
    ``true / predicted / probability / loss``."""
    from .viz import image_grid, series_grid

    names = data.classes
    labels = [
        f"{names[t]} / {names[p]}\n{q:.2f} / {loss:.2f}"
        for t, p, q, loss in zip(top.true, top.predicted, top.probability, top.losses)
    ]
    title = title or "true / predicted / prob / loss"
    if isinstance(data, SequenceDataset):
        cols = max(1, min(len(top.indices), 5))
        rows = max(1, -(-len(top.indices) // cols))
        series = data.series[top.indices]
        return series_grid(series, labels, rows=rows, cols=cols, path=path, title=title)
    return image_grid(data.images[top.indices], labels, path=path, title=title)
