"""Model registry: ``@register_model`` builders, :func:`create_model`, :func:`list_models`."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConvzooError, UnknownNameError


class ModelOptionError(ConvzooError, ValueError):
    """A model option with a value the family does not accept."""


#: default length (steps) of the 1-D models' input: GunPoint's 150, the UCR set docs/sequences.md
#: starts with (data sets pad or crop their series; this is what `convzoo models` shows)
DEFAULT_LENGTH = 150


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of a model before building it."""

    name: str
    builder: Callable[..., nn.Module]
    #: input size (H = W, pixels) the book trains this network at on Fashion-MNIST; for a
    #: sequence model (``spatial_dims == 1``) its default length L in steps
    default_image_size: int
    family: str
    doc: str = ""
    #: 2: the model takes images N x C x H x W; 1: sequences N x C x L
    spatial_dims: int = 2
    #: smallest input side (pixels) or length (steps) every layer can process; a function of
    #: the builder's options for families whose depth is an option
    min_size: int | Callable[..., int] = 1

    def min_input_size(self, **options: Any) -> int:
        return self.min_size(**options) if callable(self.min_size) else self.min_size

    def default_input_size(self, in_channels: int = 1) -> tuple[int, ...]:
        """One input's shape at the default size: (C, H, W) for images, (C, L) for sequences."""
        return (in_channels,) + (self.default_image_size,) * self.spatial_dims


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    image_size: int | None = None,
    length: int | None = None,
    family: str,
    min_size: int | Callable[..., int] = 1,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name``: an image model with its default ``image_size``
    (pixels), or a sequence model with its default ``length`` (steps), and the smallest input
    it takes (``min_size``, checked by :meth:`ZooModel.check_input`). Duplicate names, or
    both or neither size, are programming errors."""
    if (image_size is None) == (length is None):
        raise RuntimeError(f"model {name!r}: give exactly one of image_size and length")
    size, dims = (image_size, 2) if length is None else (length, 1)

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = ModelEntry(name, fn, size, family, doc, dims, min_size)
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; unknown names list the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


def create_model(
    name: str, *, num_classes: int = 10, in_channels: int = 1, **kwargs: Any
) -> nn.Module:
    """Build the registered model ``name``.

    ``kwargs`` are the family's options (for example ``width_ratio=4`` for ``vgg11``); an
    option the builder does not take is reported with the ones it does.
    """
    entry = get_model_entry(name)
    if num_classes < 1:
        raise ModelOptionError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ModelOptionError(f"in_channels must be >= 1, got {in_channels}")
    params = inspect.signature(entry.builder).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        accepted = [p for p in params if p not in ("num_classes", "in_channels")]
        raise UnknownNameError(
            f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(accepted) or 'none'}"
        )
    try:
        model = entry.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except (ValueError, TypeError) as e:  # an option value the family rejects
        raise ModelOptionError(f"model {name!r}: {e}") from None
    # Enough to rebuild the same network later (saved with weights and checkpoints).
    model.model_name = name
    model.min_input_size = entry.min_input_size(**kwargs)
    model.model_kwargs = dict(num_classes=num_classes, in_channels=in_channels, **kwargs)
    return model
