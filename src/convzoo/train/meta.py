"""What using a trained network needs besides its weights: :class:`ModelMeta`.

A run saves it as JSON beside the weights (``model.safetensors``, under the key ``convzoo``;
written by :func:`convzoo.train.setup.describe_model`), every export carries a copy, and
:func:`convzoo.load_model` hands it back as ``model.meta``: the classes in output order, the
input's channels and side, and the normalization the inputs were trained with. Like timm's
``pretrained_cfg`` or torchvision's ``weights.meta``, but typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError, ConvzooError

#: the metadata key that marks a network defined in Python outside the zoo (its class's
#: qualified name): such a network cannot be rebuilt from its name, only loaded into
MODULE_CLASS = "module_class"


@dataclass(frozen=True)
class ModelMeta:
    """A trained network's identity and input spec (all sizes in pixels)."""

    model: str  #: zoo name, or the class name of a network defined in Python
    num_classes: int
    in_channels: int
    classes: list[str]  #: class names, in the order of the network's outputs
    image_size: int  #: inputs are resized to image_size x image_size
    #: per-channel normalization of pixels scaled to [0, 1] (None: not normalized)
    mean: list[float] | None = None
    std: list[float] | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    subset: str | None = None
    precision: str = "fp32"  #: the autocast precision it was tested with during training
    tta: bool = False  #: tested on each image and its mirror image
    #: qualified class name of a network defined in Python (None: a zoo model)
    module_class: str | None = None
    #: the epoch whose weights these are when they were chosen on validation data (a run's
    #: best.safetensors); None: the last epoch's weights (model.safetensors)
    epoch: int | None = None
    #: any other keys of the saved metadata, kept so that the dict round-trips
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_zoo(self) -> bool:
        """Whether ``convzoo.create_model(model, **model_options)`` rebuilds the network."""
        return self.module_class is None

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "the metadata") -> ModelMeta:
        """The metadata of a weights or export file; one clear error when it is not ours."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        try:
            meta = cls(
                **{k: v for k, v in d.items() if k in names},
                extra={k: v for k, v in d.items() if k not in names},
            )
            sizes = (meta.num_classes, meta.in_channels, meta.image_size)
            ok = min(int(s) for s in sizes) >= 1 and len(meta.classes) == meta.num_classes
        except (TypeError, ValueError) as e:  # a required key missing, a value of a wrong type
            raise CheckpointError(
                f"{source} is not convzoo metadata ({e}); it was not written by convzoo, or "
                f"was altered"
            ) from None
        if not ok:
            raise CheckpointError(
                f"{source} is inconsistent ({meta.num_classes} classes, {len(meta.classes)} "
                f"class names, {meta.in_channels} channels, {meta.image_size} px); it was altered"
            )
        return meta

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as saved), ``extra`` keys at the top level."""
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        for key in (MODULE_CLASS, "epoch"):
            if d[key] is None:
                del d[key]  # zoo models' and last epochs' files stay as they always were
        return {**d, **extra}

    @property
    def is_sequence(self) -> bool:
        """Whether the network takes time series (C x L; a 1-D run's metadata has their
        ``length`` before resampling to ``image_size`` steps), not images."""
        return "length" in self.extra

    @property
    def input_shape(self) -> tuple[int, ...]:
        """C x H x W of one input image, C x L of one series."""
        if self.is_sequence:
            return (self.in_channels, self.image_size)
        return (self.in_channels, self.image_size, self.image_size)

    def describe_input(self) -> str:
        """One line: what a float input must be (for messages and model cards)."""
        norm = (
            f"normalized per channel with mean {_fmt(self.mean)} and std {_fmt(self.std)}"
            if self.mean is not None
            else "not normalized"
        )
        if self.is_sequence:
            c, n = self.input_shape
            length = self.extra["length"]
            resampled = f" and resampled to {n}" if n != length else ""
            values = (
                "each series z-normalised per channel"
                if self.extra.get("znorm", True)  # absent: a run from when every set was
                else "the stored values (not z-normalised)"
            )
            return (
                f"float32 N x {c} x {n}, {values}, padded or cut to {length} steps{resampled}, "
                f"{norm}"
            )
        c, h, w = self.input_shape
        return f"float32 N x {c} x {h} x {w}, pixels scaled to [0, 1], {norm}"


def refuse_python_network(meta: dict[str, Any], run_dir: Any) -> None:
    """Resuming needs the network rebuilt by name: for one defined in Python say so, rather
    than 'unknown model'."""
    if meta.get(MODULE_CLASS):
        raise ConvzooError(
            f"{run_dir} trained a network defined in Python ({meta[MODULE_CLASS]}), which "
            f"convzoo cannot rebuild by name; use its weights with convzoo.load_model"
            f"({str(run_dir)!r}, model=...) or train it again with convzoo.fit"
        )


def _fmt(values: list[float] | None) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values or ()) + ")"
