"""The interface every zoo model shares: ``features -> head``, input checks, classifier access."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputSizeError

#: what a model of 1 or 2 spatial dimensions takes, for messages
_INPUT_KINDS = {1: ("sequences", "N x C x L"), 2: ("images", "N x C x H x W")}


class ZooModel(nn.Module):
    """Base class of the zoo.

    A subclass builds ``self.features`` (an ``nn.Sequential`` of named stages: the units that
    ``--freeze N`` counts) and ``self.head`` (adaptive pooling, flatten and the classifier), and
    names the classifier module with ``classifier_path`` relative to the model. The book prints
    each layer's output shape by iterating over a flat ``nn.Sequential``; :func:`convzoo.summary`
    does the same for these nested ones with forward hooks.
    """

    classifier_path: str = "head.fc"
    #: smallest input side (pixels) or length (steps) every layer can process: the registry
    #: entry's ``min_size``, set by :func:`convzoo.create_model`
    min_input_size: int = 1

    def __init__(self, *, num_classes: int, in_channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        #: 2 for images (N x C x H x W), 1 for sequences (N x C x L)
        self.spatial_dims = spatial_dims

    # -- forward --------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    # -- input checks ---------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        return getattr(self, "model_name", type(self).__name__)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputSizeError` (one line, naming the model) for inputs it cannot take."""
        what, shape = _INPUT_KINDS[self.spatial_dims]
        if x.dim() != 2 + self.spatial_dims:
            raise InputSizeError(
                f"{self.display_name} expects a batch of {what} shaped {shape}, "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise InputSizeError(
                f"{self.display_name} was built for {self.in_channels}-channel {what}, got "
                f"{x.shape[1]} channels; build it with in_channels={x.shape[1]}"
            )
        if min(x.shape[2:]) < self.min_input_size:
            raise InputSizeError(self._too_small(tuple(x.shape[2:])))

    def _too_small(self, got: tuple[int, ...]) -> str:
        m = self.min_input_size
        if self.spatial_dims == 1:
            return (
                f"{self.display_name} needs sequences of at least {m} steps, got {got[0]}; pad "
                "the series or pick a model that downsamples less"
            )
        return (
            f"{self.display_name} needs inputs of at least {m}x{m} pixels, got "
            f"{'x'.join(map(str, got))}; resize the images (e.g. --image-size {m}) or pick a "
            "model that downsamples less"
        )

    # -- classifier access (fine-tuning) --------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_path)

    def make_classifier(self, num_classes: int) -> nn.Module:
        """A fresh classifier for ``num_classes`` outputs; families override this."""
        old = self.get_classifier()
        if not isinstance(old, nn.Linear):
            raise NotImplementedError(f"{type(self).__name__} must override make_classifier")
        return nn.Linear(old.in_features, num_classes)

    def reset_classifier(self, num_classes: int) -> nn.Module:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        old = self.get_classifier()
        new = self.make_classifier(num_classes)
        p = next(old.parameters(), None)
        if p is not None:
            new = new.to(device=p.device, dtype=p.dtype)
        parent_path, _, leaf = self.classifier_path.rpartition(".")
        setattr(self.get_submodule(parent_path) if parent_path else self, leaf, new)
        self.num_classes = num_classes
        if hasattr(self, "model_kwargs"):
            self.model_kwargs["num_classes"] = num_classes
        return new

    @property
    def stages(self) -> list[tuple[str, nn.Module]]:
        """The feature stages in input-to-output order (what ``freeze N`` counts)."""
        return list(self.features.named_children())

    @property
    def parts(self) -> list[tuple[str, nn.Module]]:
        """The stages, then ``("head", ...)``: run in order they compute ``forward`` (less the
        input check). Model and pipeline parallelism cut this list into contiguous groups."""
        return [*self.stages, ("head", self.head)]
