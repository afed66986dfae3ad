"""A trained network: :func:`load_model`, :func:`predict`, :func:`evaluate`.

Shaped like timm and torchvision: a loaded network is a plain ``nn.Module`` (in eval mode)
that carries its :class:`ModelMeta` as ``model.meta`` (classes, input size, normalization), so
it can be used, trained further or exported like any module, and :func:`predict` needs nothing
besides it and the images (:func:`predict_series` for a time-series network's files).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import make_loader
from .data.dataset import ImageDataset, LabelledData
from .data.images import ImageInput, image_batch, unlike_training
from .data.loader import DeviceLoader
from .data.sequences import SequenceDataset, series_tensor, trim_missing_end
from .data.series_file import read_series_file
from .errors import CheckpointError, ConvzooError, DataError
from .io import load_weights
from .models import create_model
from .runtime import PRECISIONS, Precision, resolve_device, resolve_precision
from .train.config import MAX_IMAGE_SIZE, MAX_SERIES_LENGTH
from .train.meta import MODULE_CLASS, ModelMeta
from .train.rundir import resume_command
from .train.trainer import Trainer

__all__ = [
    "Evaluation",
    "ModelMeta",
    "Prediction",
    "evaluate",
    "load_model",
    "predict",
    "predict_series",
    "weights_file",
]

#: ``weights=`` of a run directory: the weights the run chose on validation data, or the last
#: epoch's
WEIGHTS = {"best": "best.safetensors", "last": "model.safetensors"}


def weights_file(source: str | os.PathLike, weights: str | None = "best") -> Path:
    """The weights file ``weights`` names in the run directory ``source`` (a file is taken as
    it is). ``"best"`` (or ``None``): the weights the run chose, ``best.safetensors`` (the best
    epoch on validation data) where it has one, else ``model.safetensors`` (a run without a
    validation split chose nothing: its last epoch's weights are its only ones); ``"last"``:
    ``model.safetensors``. One line for an unknown name or a run that did not finish."""
    p = Path(source)
    if not p.is_dir():
        return p
    weights = weights or "best"
    if weights not in WEIGHTS:
        raise CheckpointError(f"unknown weights {weights!r}; choose one of: {', '.join(WEIGHTS)}")
    if weights == "best" and not (p / WEIGHTS["best"]).exists():
        weights = "last"
    path = p / WEIGHTS[weights]
    if path.exists():
        return path
    if not (p / "config.json").is_file():
        raise CheckpointError(
            f"{source} is not a convzoo run directory (no config.json, no weights): give the "
            f"folder convzoo train --out wrote, or a .safetensors file"
        )
    raise CheckpointError(
        f"{source} has no {path.name}: the run did not finish; resume it with {resume_command(p)}"
    )


@dataclass
class LoadReport:
    """How a weights file matched a network: what was loaded and what did not fit."""

    loaded: int
    missing: list[str] = field(default_factory=list)  #: the network's, absent from the file
    unexpected: list[str] = field(default_factory=list)  #: the file's, unknown to the network
    #: (name, shape in the file, shape in the network)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        def names(items: Sequence[str], shown: int = 3) -> str:
            more = f", ... {len(items) - shown} more" if len(items) > shown else ""
            return ", ".join(items[:shown]) + more

        def shape(s: tuple[int, ...]) -> str:
            return "x".join(map(str, s)) or "scalar"

        parts = [f"{self.loaded} tensors loaded"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({names(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({names(self.unexpected)})")
        if self.mismatched:
            shown = [f"{n}: file {shape(a)}, model {shape(b)}" for n, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} with another shape ({names(shown, 2)})")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_fitting(model: nn.Module, tensors: dict[str, torch.Tensor]) -> LoadReport:
    """Copy the tensors of ``tensors`` that fit ``model`` by name and shape into it, and report
    the rest; what to refuse is the caller's decision."""
    own = model.state_dict()
    mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in tensors.items()
        if k in own and v.shape != own[k].shape
    ]
    fits = {k: v for k, v in tensors.items() if k in own and v.shape == own[k].shape}
    # missing batch-norm counters of old files are filled in by PyTorch, not reported
    result = model.load_state_dict(fits, strict=False)
    bad_shape = {k for k, _, _ in mismatched}
    return LoadReport(
        loaded=len(fits),
        missing=[k for k in result.missing_keys if k not in bad_shape],
        unexpected=[k for k in tensors if k not in own],
        mismatched=mismatched,
    )


def check_metadata(meta: dict, path: Path) -> None:
    """Refuse metadata that would build a network but not use it: a class list of another
    length, an input size of 0 or of gigabytes, a normalization of the wrong length."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: its metadata {what}; the file was altered or damaged: use the run's "
            f"checkpoint or train again"
        )

    n, c, size = meta.get("num_classes"), meta.get("in_channels"), meta.get("image_size")
    for key, value in (("num_classes", n), ("in_channels", c)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(f"has {key} {value!r}, not a whole number >= 1")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != n:
        count = len(classes) if isinstance(classes, list) else "no"
        raise bad(f"lists {count} class names for {n} classes")
    if "length" in meta:  # a 1-D model: image_size and length are numbers of steps
        for key in ("image_size", "length"):
            value = meta.get(key)
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or not 1 <= value <= MAX_SERIES_LENGTH:
                raise bad(f"has {key} {value!r}, not a length in 1..{MAX_SERIES_LENGTH} steps")
    elif not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_IMAGE_SIZE:
        raise bad(f"has image_size {size!r}, not a side in 1..{MAX_IMAGE_SIZE} pixels")
    if not _small(meta.get("model_options", {})):
        raise bad(f"has model options {meta.get('model_options')!r} beyond any zoo model's")
    for key in ("mean", "std"):
        value = meta.get(key)
        if value is None:
            continue
        ok = isinstance(value, list) and len(value) == c
        ok = ok and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        if not ok or (key == "std" and min(value) <= 0):
            raise bad(f"has a {key} of {value!r}, not {c} finite numbers (std > 0)")
    if (meta.get("mean") is None) != (meta.get("std") is None):
        raise bad("gives only one of mean and std")
    for key in ("model", "dataset", "subset"):  # names read as text (``dataset`` may be absent)
        value = meta.get(key)
        if not isinstance(value, str) and (key == "model" or value is not None):
            raise bad(f"has {key} {value!r}, not a name")
    precision, tta = meta.get("precision", "fp32"), meta.get("tta", False)
    if precision not in PRECISIONS or not isinstance(tta, bool):
        raise bad(f"has precision {precision!r}, tta {tta!r}")


def _small(options: Any) -> bool:
    """Model options of a plausible size: numbers up to 65,536 (VGG's 4096-unit layers fit),
    at most 1,000 values nested at most 4 deep, so that building the network on the meta
    device stays instant."""
    try:
        leaves = list(itertools.islice(_leaves(options), 1001))
    except RecursionError:  # nested too deep
        return False
    numbers = [v for v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(leaves) <= 1000 and all(math.isfinite(v) and abs(v) <= 1 << 16 for v in numbers)


def _leaves(value: Any, depth: int = 0) -> Iterator[Any]:
    if depth > 4:
        raise RecursionError
    if isinstance(value, (dict, list)):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _leaves(v, depth + 1)
    else:
        yield value


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity: every prediction would be NaN."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(
                f"{path}: tensor {name} holds NaN or infinite values, so every prediction "
                f"would be NaN; the weights are damaged: use the run's checkpoint or train again"
            )


#: what a model's constructor may raise on options it cannot build (hand-edited metadata)
_BUILD_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
    AssertionError,
)


def build_trained(
    path: Path, tensors: dict[str, torch.Tensor], meta: dict, device: torch.device | str = "cpu"
) -> nn.Module:
    """The network ``meta`` describes with ``tensors`` in it, checked against the file before
    any memory is taken: the network is built on the meta device and must match the file's
    tensors name for name and shape for shape, so it is never larger than the file."""
    check_metadata(meta, path)
    m = ModelMeta.from_dict(meta, source=str(path))
    try:
        with torch.device("meta"):
            model = create_model(
                m.model, num_classes=m.num_classes, in_channels=m.in_channels, **m.model_options
            )
    except ConvzooError as e:  # an unknown model or option, named by the registry
        raise CheckpointError(f"{path}: {e}") from None
    except _BUILD_ERRORS as e:  # metadata that builds no model
        raise CheckpointError(
            f"{path}: its metadata does not describe a zoo model ({type(e).__name__}: {e}); "
            f"the file was altered or damaged: use the run's checkpoint or train again"
        ) from None
    with warnings.catch_warnings():  # copying into meta tensors is a no-op, and says so
        warnings.simplefilter("ignore")
        report = load_fitting(model, tensors)
    if not report.clean:
        raise CheckpointError(
            f"{path} does not fit the {m.model} its metadata describes (options "
            f"{m.model_options}): {report}; the file was altered or damaged: use the run's "
            f"checkpoint or train again"
        )
    if m.image_size < getattr(model, "min_input_size", 1):
        raise CheckpointError(
            f"{path}: its metadata has image_size {m.image_size}, smaller than the "
            f"{model.min_input_size} px {m.model} needs; the file was altered or damaged"
        )
    check_finite(tensors, path)
    model = model.to_empty(device=device)
    load_fitting(model, tensors)
    return model.eval()


def load_model(
    source: str | os.PathLike,
    weights: str | None = "best",
    *,
    model: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """The trained network of a run directory (or of a ``.safetensors`` file it wrote), in
    eval mode on ``device``, with its :class:`ModelMeta` as ``net.meta``; ``weights`` as in
    :func:`weights_file`.

    Zoo models are rebuilt from the metadata. A network defined in Python (trained with
    :func:`convzoo.fit`) cannot be rebuilt by name: build it as it was trained and pass it as
    ``model``; its weights are loaded into it (by name and shape; nothing is unpickled) and it
    is returned. Any difference between the file and the network is one clear error.
    """
    path = weights_file(source, weights)
    tensors, meta = load_weights(path)
    if "classes" not in meta or (model is None and "model" not in meta):
        raise CheckpointError(
            f"{path} carries no convzoo metadata (model name, classes); it was not written by "
            f"convzoo train or convzoo.fit — fine-tune foreign weights with convzoo finetune "
            f"torchvision:ARCH --weights-file FILE"
        )
    if model is not None:
        report = load_fitting(model, tensors)
        if not report.clean:
            raise CheckpointError(
                f"{path} does not fit the {type(model).__name__} given: {report}; build the "
                f"network exactly as it was trained"
            )
        net = model.to(device).eval()
    elif meta.get(MODULE_CLASS):
        raise CheckpointError(
            f"{path} holds a network defined in Python ({meta[MODULE_CLASS]}), which convzoo "
            f"cannot rebuild by name; in Python, build it as it was trained and load the "
            f"weights into it: convzoo.load_model({str(source)!r}, model=...)"
        )
    else:
        net = build_trained(path, tensors, meta, device)
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
    colours: list[bool] = []
    pixels = image_batch(images, meta.in_channels, meta.image_size, colours)
    if note := unlike_training(pixels, colours, meta.extra.get("pixels", {}), images):
        warnings.warn(note, stacklevel=2)
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
    #: everything else the evaluation computed (:meth:`convzoo.train.Trainer.evaluate`)
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
    dev, loader, precision = tested_as_in_training(model, meta, dataset, device, batch_size)
    trainer = Trainer(
        model,
        loader,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        device=dev,
        precision=precision,
        tta=meta.tta,
    )
    out = trainer.evaluate(loader, confusion=True)
    cm = out.pop("confusion")
    per_class = (cm.diag().double() / cm.sum(1).clamp_min(1).double()).tolist()
    known = ("acc", "loss", "count")
    return Evaluation(
        *(out.pop(k) for k in known), dict(zip(dataset.classes, per_class)), cm, details=out
    )


def check_compatible(meta: ModelMeta, data: LabelledData) -> None:
    series = isinstance(data, SequenceDataset)
    if series != meta.is_sequence:
        what = "time series" if series else "images"
        takes = "images" if series else "time series"
        raise DataError(f"the model takes {takes} but {data.name} holds {what}")
    if data.in_channels != meta.in_channels:
        what = "series" if series else "images"
        raise DataError(
            f"the model takes {meta.in_channels}-channel {what} but {data.name} has "
            f"{data.in_channels} channels"
        )
    if data.num_classes != meta.num_classes:
        raise DataError(
            f"the model predicts {meta.num_classes} classes but {data.name} has "
            f"{data.num_classes}; evaluate on the data set (and --subset) it was trained for"
        )


def tested_as_in_training(
    model: nn.Module, meta: ModelMeta, data: LabelledData, device: str, batch_size: int
) -> tuple[torch.device, DeviceLoader, Precision]:
    """The device (``model`` moved there), a loader of ``data`` and the precision with which
    the run tested its network (input size, normalization, autocast), so that the figures
    agree with training's; ``data`` is checked against the run's classes and input first."""
    check_compatible(meta, data)
    dev = resolve_device(device)
    model.to(dev)
    loader = make_loader(
        data, batch_size, image_size=meta.image_size, mean=meta.mean, std=meta.std, device=dev
    )
    return dev, loader, resolve_precision(meta.precision, dev)


def read_series(path: str | Path, meta: ModelMeta) -> list[tuple[str, torch.Tensor]]:
    """``(name, float32 C x L)`` for every series of a ``.csv``/``.npy`` file (the rule:
    :mod:`convzoo.data.series_file`), prepared as the run's data set was: trailing missing steps
    cut, z-normalised (where its data set was: ``znorm`` in the metadata, absent in runs from
    before it was recorded, when every set was), padded or cut at the end to the training
    length. A name says when its series had another length (``a.csv row 2 (200 steps, cut to
    150)``)."""
    raw = read_series_file(path, meta.in_channels)
    trimmed = trim_missing_end([x for _, x in raw], str(path))
    length = meta.extra["length"]
    series = series_tensor(trimmed, length, normalize=meta.extra.get("znorm", True))
    names = []
    for (name, _), x in zip(raw, trimmed):
        steps = x.shape[1]
        if steps != length:
            name += f" ({steps} steps, {'padded' if steps < length else 'cut'} to {length})"
        names.append(name)
    return list(zip(names, series))


def predict_series(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    paths: Sequence[str | os.PathLike],
    *,
    meta: ModelMeta | None = None,
    top_k: int = 3,
    device: str = "auto",
) -> list[tuple[str, list[tuple[str, float]]]]:
    """Top-``k`` (class, probability) for every series in the ``.csv``/``.npy`` files, named
    by file (and row), each prepared as the training data (:func:`read_series`) and batched
    by the training loader (resampling, normalization); ``model`` and ``meta`` as for
    :func:`predict`."""
    meta = meta or model_meta(model)
    if not meta.is_sequence:
        raise ConvzooError("this model takes images; give image files, not series files")
    named = [item for p in paths for item in read_series(p, meta)]
    is_module = isinstance(model, nn.Module)
    dev = resolve_device(device) if is_module else torch.device("cpu")
    if is_module:
        model.to(dev).eval()
    data = SequenceDataset(
        torch.stack([x for _, x in named]),
        torch.zeros(len(named), dtype=torch.int64),
        list(meta.classes),
    )
    loader = make_loader(
        data, 1024, image_size=meta.image_size, mean=meta.mean, std=meta.std, device=dev
    )
    with torch.no_grad():
        probs = torch.cat([model(b.x).float().softmax(1).cpu() for b in loader])
    top = Prediction(list(meta.classes), probs).top(top_k)
    return [(name, t) for (name, _), t in zip(named, top)]
