"""What a trained network does with one image (or time series), as tensors: the input it
receives, every stage's output, the first convolution's filters, the class probabilities and
the attribution maps.

Pictures and the page are drawn from an :class:`Explanation` by ``pictures`` and ``page``; this
module only computes, on the CPU: 0.5 s for speednet at 28 px, 6-9 s for VGG-11 (channels / 4)
and AlexNet at 224 px on 2 busy CPU cores, most of it Integrated Gradients'
32 forward and backward passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import make_loader
from ..data.dataset import ImageDataset
from ..data.sequences import SequenceDataset
from ..errors import ConvzooError, DataError, UnknownNameError
from ..models.tv import first_conv
from ..train.meta import ModelMeta
from .cam import METHODS, capture, class_activation_maps, resolve_layer, stage_modules
from .integrated_gradients import integrated_gradients

#: key of the attribution layer's output among the captured ones
_LAYER = "\0layer"


@dataclass
class StageView:
    """One stage's output for the explained image."""

    name: str  #: the stage's name (``b2``, ``layer3``)
    activation: torch.Tensor  #: C x H x W (C x L for a sequence model)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.activation.shape)

    def ranking(self) -> list[int]:
        """All channels, the most active first (by mean activation over the map)."""
        return self.activation.flatten(1).mean(1).argsort(descending=True, stable=True).tolist()

    def top_maps(self, k: int) -> tuple[list[int], torch.Tensor]:
        """The ``k`` most active channels and their maps (``k x H x W``)."""
        top = self.ranking()[:k]
        return top, self.activation[top]


@dataclass
class Explanation:
    model_name: str
    source: str  #: where the image came from, for titles (a file name, ``test #12``)
    #: C x H x W (a series: C x L), exactly what the network receives (resized, normalized)
    image: torch.Tensor
    #: the same image de-normalized to [0, 1] for display (a series: its values before
    #: the channel normalization, if any)
    pixels: torch.Tensor
    mean: Sequence[float] | None
    std: Sequence[float] | None
    stages: list[StageView]
    filters_layer: str  #: path of the first convolution
    filters: torch.Tensor  #: its weights, out x in x kh x kw (out x in x k in 1-D)
    classes: list[str]
    probs: torch.Tensor  #: softmax of the logits, one per class
    label: int | None  #: the true class, when known
    method: str  #: attribution method (``hirescam`` or ``gradcam``)
    layer: str  #: the layer the maps are computed at
    layer_shape: tuple[int, ...]  #: its output, C x h x w
    #: class index -> H x W layer map (non-negative), for the predicted and the true class
    #: (L, over time, for a series)
    maps: dict[int, torch.Tensor] = field(default_factory=dict)
    #: class index -> H x W Integrated Gradients (non-negative), the same classes (L)
    pixel_maps: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())

    @property
    def is_series(self) -> bool:
        """A sequence model's explanation: the input is C x L."""
        return self.image.dim() == 2

    def __repr__(self) -> str:  # the tensors would run to tens of thousands of characters
        p = float(self.probs[self.predicted])
        true = f", true {self.classes[self.label]}" if self.label is not None else ""
        verdict = f"predicted {self.classes[self.predicted]} {p:.3f}{true}"
        return f"Explanation({self.model_name} on {self.source or 'an image'}: {verdict})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the pictures and text of ``convzoo explain``'s page."""
        from .page import notebook_html

        return notebook_html(self)


def network_input(image: torch.Tensor, meta: ModelMeta, *, resize: bool = True) -> torch.Tensor:
    """uint8 ``C x H x W`` -> the ``1 x C x S x S`` float tensor the network was trained on:
    the training loader's own resize and normalization (``DeviceLoader.finish_batch``). For a
    sequence model a float ``C x L`` series, prepared as its data set
    (:func:`convzoo.trained.read_series`), -> ``1 x C x L`` (``SequenceLoader``)."""
    if meta.is_sequence:
        return _series_input(image, meta, resize)
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise DataError(f"expected a uint8 C x H x W image, got {image.dtype} {tuple(image.shape)}")
    if image.shape[0] != meta.in_channels:
        raise DataError(
            f"the model takes {meta.in_channels}-channel images, this one has "
            f"{image.shape[0]} channels"
        )
    one = ImageDataset(image[None], torch.zeros(1, dtype=torch.int64), list(meta.classes))
    return _first_batch(one, meta, resize)


def _series_input(series: torch.Tensor, meta: ModelMeta, resize: bool) -> torch.Tensor:
    if not series.is_floating_point() or series.dim() != 2:
        raise DataError(f"expected a float C x L series, got {series.dtype} {tuple(series.shape)}")
    if series.shape[0] != meta.in_channels:
        raise DataError(
            f"the model takes {meta.in_channels}-channel series, this one has "
            f"{series.shape[0]} channels"
        )
    labels = torch.zeros(1, dtype=torch.int64)
    one = SequenceDataset(series[None].float(), labels, list(meta.classes))
    return _first_batch(one, meta, resize)


def unfolded(weight: torch.Tensor, options: dict) -> torch.Tensor:
    """A folded network's first filters (out x C*f x k, model option ``fold`` f) as the filters
    over the steps they see, out x C x k*f, in time order; others as they are."""
    f = options.get("fold", 1)
    return weight.unflatten(1, (-1, f)).transpose(2, 3).flatten(2) if f > 1 else weight


def _first_batch(
    one: ImageDataset | SequenceDataset, meta: ModelMeta, resize: bool
) -> torch.Tensor:
    size = meta.image_size if resize else None
    loader = make_loader(one, 1, image_size=size, mean=meta.mean, std=meta.std)
    return next(iter(loader)).x


def denormalize(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None):
    """``C x H x W`` network input -> pixels in [0, 1] (the inverse of the normalization); a
    ``C x L`` series -> its values before the channel normalization (not clamped)."""
    series = x.dim() == 2
    if mean is not None and std is not None:
        shape = (-1,) + (1,) * (x.dim() - 1)
        x = x * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    return x if series else x.clamp(0, 1)


def default_layer(stages: list[StageView]) -> str:
    """The last stage whose output is still a map (more than 1 x 1, or more than 1 step): a
    one-pixel map says nothing about where, so networks that pool to 1 x 1 in their last stage
    use the one before."""
    for stage in reversed(stages):
        if len(stage.shape) >= 2 and math.prod(stage.shape[1:]) > 1:
            return stage.name
    raise ConvzooError("no stage of this network outputs a spatial map; give --layer")


def _check_request(meta: ModelMeta, label: int | None, method: str) -> None:
    if method not in METHODS:
        raise UnknownNameError(
            f"unknown attribution method {method!r}; known: {', '.join(METHODS)}"
        )
    if label is not None and not 0 <= label < len(meta.classes):
        raise DataError(f"label {label} is outside 0..{len(meta.classes) - 1}")


def _forward_with_views(
    model: nn.Module, x: torch.Tensor, layer: str | None
) -> tuple[torch.Tensor, list[StageView], str, tuple[int, ...]]:
    """One forward pass of ``x`` (a batch of one) watching every stage: the class
    probabilities, each stage's view, the attribution layer (given or :func:`default_layer`)
    and its output's shape."""
    check = getattr(model, "check_input", None)
    if check is not None:  # an input the network cannot take fails in one line, before the hooks
        check(x)
    stages = stage_modules(model)
    watched = dict(stages)
    if layer is not None:  # an unknown name fails before any work
        watched[_LAYER] = resolve_layer(model, layer)
    with torch.no_grad(), capture(watched) as outs:
        probs = model(x).float().softmax(1)[0]
    views = [StageView(name, outs[name][0].float()) for name, _ in stages if name in outs]
    if layer is None:
        layer = default_layer(views)
        outs[_LAYER] = outs[layer]
    return probs, views, layer, tuple(outs[_LAYER].shape[1:])


def explain(
    model: nn.Module,
    meta: ModelMeta | dict[str, Any],
    image: torch.Tensor,
    *,
    label: int | None = None,
    layer: str | None = None,
    method: str = METHODS[0],
    source: str = "",
) -> Explanation:
    """Explain ``model``'s decision on ``image`` (uint8 ``C x H x W``, any size; for a
    sequence model a float ``C x L`` series, see :func:`network_input`).

    ``meta``: the network's :class:`~convzoo.ModelMeta` (``model.meta`` of
    :func:`convzoo.load_model`; its dict form is taken too). ``layer``: stage name or module
    path for the attribution maps (default: :func:`default_layer`).
    """
    if not isinstance(meta, ModelMeta):
        meta = ModelMeta.from_dict({"model": type(model).__name__, **meta})
    _check_request(meta, label, method)
    model.eval()
    x = network_input(image, meta)
    probs, views, layer, layer_shape = _forward_with_views(model, x, layer)
    targets = list(dict.fromkeys([int(probs.argmax())] + ([label] if label is not None else [])))
    batch, classes = x.expand(len(targets), *x.shape[1:]), torch.tensor(targets)
    maps = class_activation_maps(
        model, batch, classes, layer=resolve_layer(model, layer), method=method
    )
    # a black image (a zero series: its mean after z-normalisation; the padding's value for a
    # set kept unnormalised), normalized as the input
    zero = torch.zeros_like(image[(slice(None),) + (slice(0, 1),) * (image.dim() - 1)])
    black = network_input(zero, meta, resize=False)
    pixel_maps = integrated_gradients(model, batch, classes, baseline=black)
    conv_path, conv = first_conv(model)
    return Explanation(
        model_name=meta.model,
        source=source,
        image=x[0],
        pixels=denormalize(x[0], meta.mean, meta.std),
        mean=meta.mean,
        std=meta.std,
        stages=views,
        filters_layer=conv_path,
        filters=unfolded(conv.weight.detach().float().cpu(), meta.model_options),
        classes=list(meta.classes),
        probs=probs,
        label=label,
        method=method,
        layer=layer,
        layer_shape=layer_shape,
        maps=dict(zip(targets, maps.detach())),
        pixel_maps=dict(zip(targets, pixel_maps)),
    )
