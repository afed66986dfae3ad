"""A trained network in Python: :func:`load_model`, :func:`predict`, :func:`evaluate`.

The public face of :mod:`convzoo.inference`, shaped like timm and torchvision: a loaded
network is a plain ``nn.Module`` (in eval mode) that carries its :class:`ModelMeta` as
``model.meta`` (classes, input size, normalization), so it can be used, trained further or
exported like any module, and :func:`predict` needs nothing besides it and the images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.dataset import ImageDataset, LabelledData
from .data.images import ImageInput, image_batch
from .errors import CheckpointError, ConvzooError
from .inference import evaluate_model, load_fitting, load_trained, weights_path
from .io import load_weights
from .runtime import resolve_device
from .train.meta import ModelMeta

__all__ = ["Evaluation", "ModelMeta", "Prediction", "evaluate", "load_model", "predict"]


def weights_file(source: str | os.PathLike, weights: str | None = "best") -> Path:
    """The weights file ``weights`` names in the run directory ``source`` (a file is taken as
    it is). ``"best"``: the weights the run chose, ``best.safetensors`` (the best epoch on
    validation data) where it has one, else ``model.safetensors`` (a run without a validation
    split chose nothing: its last epoch's weights are its only ones); ``"last"``:
    ``model.safetensors``. One line for an unknown name or a run that did not finish."""
    return weights_path(source, None if weights in (None, "best") else weights)


def load_model(
    source: str | os.PathLike,
    weights: str | None = "best",
    *,
    model: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """The trained network of a run directory (or of a ``.safetensors`` file it wrote), in
    eval mode on ``device``, with its :class:`ModelMeta` as ``net.meta``.

    ``weights``: ``"best"`` (``best.safetensors``, chosen on validation data; for a run trained
    without a validation split, ``model.safetensors``, its only weights) or ``"last"``
    (``model.safetensors``, the last epoch's).
    Zoo models are rebuilt from the metadata. A network defined in Python (trained with
    :func:`convzoo.fit`) cannot be rebuilt by name: build it as it was trained and pass it as
    ``model``; its weights are loaded into it (by name and shape; nothing is unpickled) and it
    is returned. Any difference between the file and the network is one clear error.
    """
    path = weights_file(source, weights)
    if model is None:
        net, meta = load_trained(path, device=device)
    else:
        tensors, meta = load_weights(path)
        if "classes" not in meta:
            raise CheckpointError(
                f"{path} carries no convzoo metadata (classes, input size); it was not written "
                f"by convzoo train or convzoo.fit"
            )
        report = load_fitting(model, tensors)
        if not report.clean:
            raise CheckpointError(
                f"{path} does not fit the {type(model).__name__} given: {report}; build the "
                f"network exactly as it was trained"
            )
        net = model.to(device).eval()
    net.meta = ModelMeta.from_dict(meta, source=str(path))
    return net


def model_meta(model: Any) -> ModelMeta:
    """``model.meta``, or one line saying where to get it."""
    meta = getattr(model, "meta", None)
    if isinstance(meta, ModelMeta):
        return meta
    if isinstance(meta, dict):
        return ModelMeta.from_dict(meta)
    raise ConvzooError(
        f"{type(model).__name__} has no .meta (classes, input size, normalization): use a "
        f"network from convzoo.load_model or trained by convzoo.fit, or pass meta=ModelMeta(...)"
    )


@dataclass(frozen=True)
class Prediction:
    """Class probabilities of N images (softmax of the logits), in the order given."""

    classes: list[str]
    probs: torch.Tensor  #: float32 N x num_classes, on the CPU
    #: the images as the network received them, before normalization (N x C x H x W, [0, 1])
    images: torch.Tensor | None = field(default=None, repr=False, compare=False)

    #: images a notebook shows, with their two most probable classes
    SHOWN = 16

    def _repr_png_(self) -> bytes | None:
        """Jupyter's view: the first :attr:`SHOWN` images in a grid, each with its two most
        probable classes and their probabilities."""
        if self.images is None:
            return None
        from .viz import image_grid

        n = min(len(self), self.SHOWN)
        labels = ["\n".join(f"{c} {p:.2f}" for c, p in top) for top in self.top(2)[:n]]
        return image_grid(self.images[:n], labels, path=None)._repr_png_()

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def indices(self) -> list[int]:
        """The most probable class of each image, as an index into :attr:`classes`."""
        return self.probs.argmax(1).tolist()

    @property
    def labels(self) -> list[str]:
        """The most probable class of each image."""
        return [self.classes[i] for i in self.indices]

    @property
    def scores(self) -> list[float]:
        """The probability of each image's most probable class."""
        return self.probs.max(1).values.tolist()

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable (class, probability) pairs of each image, best first."""
        values, indices = self.probs.topk(min(k, self.probs.shape[1]), dim=1)
        return [
            [(self.classes[i], float(v)) for v, i in zip(vs, ix)]
            for vs, ix in zip(values.tolist(), indices.tolist())
        ]


def normalize(x: torch.Tensor, meta: ModelMeta) -> torch.Tensor:
    """Pixels in [0, 1] -> the network's input, with the same arithmetic as the training
    loader (:meth:`convzoo.data.BatchLoader.finish_batch`)."""
    if meta.mean is None or meta.std is None:
        return x
    shape = (1, meta.in_channels, 1, 1)
    mean = torch.tensor(meta.mean, device=x.device).view(shape)
    std = torch.tensor(meta.std, device=x.device).view(shape)
    return (x - mean) / std


def predict(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: ImageInput | Sequence[ImageInput],
    *,
    meta: ModelMeta | None = None,
    device: str = "auto",
    batch_size: int = 256,
) -> Prediction:
    """Class probabilities of ``images``: file paths, PIL images, numpy arrays (H x W x C) or
    tensors (C x H x W), one or a list of them, or a 4-d batch. Each is converted as the
    training data was: the network's channels, resized to its input size, normalized.

    ``model``: a network with ``.meta`` (from :func:`load_model` or :func:`convzoo.fit`), or
    any callable from input batches to logits with ``meta`` given (an exported ONNX model:
    :func:`convzoo.export.load_onnx`).
    """
    meta = meta or model_meta(model)
    if meta.is_sequence:
        raise ConvzooError(
            f"{meta.model} takes time series, not images: predict on .csv/.npy series files "
            f"with convzoo predict RUN FILE (docs/sequences.md)"
        )
    pixels = image_batch(images, meta.in_channels, meta.image_size)
    x = normalize(pixels, meta)
    is_module = isinstance(model, nn.Module)
    dev = resolve_device(device) if is_module else torch.device("cpu")
    was_training = is_module and model.training
    if is_module:
        model.to(dev).eval()
    try:
        with torch.no_grad():
            logits = [model(chunk.to(dev)).float().cpu() for chunk in x.split(batch_size)]
    finally:
        if was_training:
            model.train()
    return Prediction(list(meta.classes), torch.cat(logits).softmax(1), pixels.cpu())


@dataclass(frozen=True)
class Evaluation:
    """What ``convzoo evaluate`` prints: accuracy, mean loss, per-class accuracy and the
    confusion matrix (rows: true classes, columns: predictions)."""

    acc: float
    loss: float
    count: int  #: images evaluated
    per_class_acc: dict[str, float]
    confusion: torch.Tensor
    #: everything else the evaluation computed (see :func:`convzoo.inference.evaluate_model`)
    details: dict[str, Any] = field(default_factory=dict)


def evaluate(
    model: nn.Module,
    dataset: ImageDataset | str | None = None,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 1024,
) -> Evaluation:
    """Evaluate ``model`` (with ``.meta``) as ``convzoo evaluate`` does: at the precision and
    with the test-time augmentation it was tested with during training.

    ``dataset``: an :class:`ImageDataset`, or a data set name whose ``split`` is loaded;
    by default the data set (and subset) the network was trained on.
    """
    meta = model_meta(model)
    if not isinstance(dataset, LabelledData):
        from .data import apply_subset, load_dataset
        from .data.sources import FILES_PREFIXES

        name = dataset or meta.dataset
        if name is None:
            raise ConvzooError("the network does not say which data set it was trained on")
        shape = {}
        if name.startswith(FILES_PREFIXES):  # decoded as the network takes them
            shape = {"channels": meta.in_channels, "image_size": meta.image_size}
        dataset = apply_subset(load_dataset(name, split=split, **shape), meta.subset)
    out = evaluate_model(model, meta.to_dict(), dataset, device=device, batch_size=batch_size)
    known = ("acc", "loss", "count", "per_class_acc", "confusion")
    return Evaluation(
        *(out[k] for k in known), details={k: v for k, v in out.items() if k not in known}
    )


def predict_images(
    model: nn.Module,
    meta: dict,
    paths: list[str],
    *,
    top_k: int = 3,
    device: str = "auto",
) -> list[list[tuple[str, float]]]:
    """Top-``k`` (class, probability) for each image file: :func:`convzoo.predict`."""
    meta_ = ModelMeta.from_dict(meta)
    return predict(model, list(paths), meta=meta_, device=device).top(top_k)
