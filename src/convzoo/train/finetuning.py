"""Fine-tuning: start from a trained network, give it a new head, train it a little further.

The chapter's recipe (``微调``): a network trained on a big data set already computes useful
features; on a new, small data set keep them and train mostly the new classifier, with a small
learning rate, for few epochs, optionally holding the bottom layers fixed. Concretely:

- the source is one of our runs (same architecture, its weights, input size and normalization)
  or a torchvision network with torchvision's weights (``torchvision:resnet18``);
- the classifier is replaced by a fresh one (Xavier init, as in the book) unless the new data
  has exactly the source's classes, and learns ``head_lr_mult`` (10) times faster;
- ``freeze`` stages at the bottom get no gradient and keep their batch-norm statistics, until
  ``unfreeze_at`` if given;
- inputs are prepared as the source was trained: its image size and normalization; gray data
  goes through an RGB stem by summing the stem's weights over the colour channels.

All of it is set up here and then handed to :func:`convzoo.train.run.train` (parameter groups
and a freezing callback), so checkpoints, exact resume and the run directory work as for any run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import ImageDataset, apply_subset
from ..errors import CheckpointError, ConvzooError, UnknownNameError
from ..io import atomic_write_json, load_state_dict_file, load_weights
from ..models import create_model
from ..models.tv import (
    PREFIX,
    TORCHVISION_ARCHS,
    PretrainedWeights,
    first_conv,
    pretrained_weights,
    weights_names,
)
from .callbacks import Checkpointer
from .config import TrainConfig
from .inference import LoadReport, load_fitting, weights_path
from .optim import xavier_init
from .run import RunResult, default_run_dir, load_data, resolve_config, resume_config, train
from .trainer import Callback, Trainer

TORCHVISION = "torchvision:"
#: the file in a fine-tuning run directory that says how to resume it
RECORD = "finetune.json"


class FinetuneError(ConvzooError, ValueError):
    """A fine-tuning option that cannot work (more frozen stages than the model has, ...)."""


@dataclass
class FinetuneConfig:
    """What fine-tuning adds to :class:`TrainConfig` (flags of ``convzoo finetune``)."""

    #: a convzoo run directory, its ``model.safetensors``, or ``torchvision:ARCH``
    source: str = ""
    #: ``torchvision:ARCH`` only: a state-dict file (.pth/.safetensors) or DEFAULT / a weights
    #: name such as IMAGENET1K_V1 (downloaded by torchvision's URL when online)
    weights: str | None = None
    freeze: int = 0  #: hold the first N stages fixed
    freeze_until: str | None = None  #: hold every stage up to and including this one fixed
    unfreeze_at: int | None = None  #: epoch (1-based) from which the frozen stages train too
    head_lr_mult: float = 10.0  #: the new classifier's learning rate / the base learning rate
    reset_head: bool = False  #: a new classifier even when the classes are the source's
    strict: bool = False  #: refuse weights with any missing, unexpected or mis-shaped tensor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        if not self.source:
            raise FinetuneError("fine-tuning needs a source: --from RUN_DIR or torchvision:ARCH")
        if self.freeze < 0:
            raise FinetuneError(f"--freeze must be >= 0, got {self.freeze}")
        if self.freeze and self.freeze_until:
            raise FinetuneError("give --freeze N or --freeze-until STAGE, not both")
        if self.unfreeze_at is not None:
            if not (self.freeze or self.freeze_until):
                raise FinetuneError("--unfreeze-at needs frozen stages (--freeze/--freeze-until)")
            if self.unfreeze_at < 2:
                raise FinetuneError(
                    f"--unfreeze-at must be an epoch >= 2 (1-based), got {self.unfreeze_at}"
                )
        if self.head_lr_mult <= 0:
            raise FinetuneError(f"--head-lr-mult must be > 0, got {self.head_lr_mult}")


# -- loading the source ---------------------------------------------------------------------
def load_into(
    model: nn.Module, tensors: dict[str, torch.Tensor], *, what: str, strict: bool = False
) -> LoadReport:
    """Copy the tensors of ``tensors`` that fit ``model`` by name and shape into it.

    Without ``strict``, extra tensors in the file are tolerated (reported), and so is a
    classifier that does not fit (it is about to be replaced); but every other tensor of the
    network must come from the file, or the "pretrained" network would be partly random: that
    is the error a file for another architecture gets. ``strict`` refuses any difference.
    """
    report = load_fitting(model, tensors)
    bad_shape = {k for k, _, _ in report.mismatched}
    name = getattr(model, "model_name", type(model).__name__)
    if strict and not report.clean:
        raise CheckpointError(f"{what} does not fit {name} exactly (--strict): {report}")
    head = getattr(model, "classifier_path", None)
    random_body = [
        k for k in [*report.missing, *bad_shape] if head is None or not k.startswith(head + ".")
    ]
    if random_body:
        raise CheckpointError(f"{what} does not fit {name}: {report}")
    return report


@dataclass
class Source:
    """A network with its trained weights, and how its inputs were prepared."""

    model: nn.Module
    description: str
    image_size: int  #: side (pixels) the network was trained at
    mean: tuple[float, ...] | None  #: its input normalization (None: pixels in [0, 1])
    std: tuple[float, ...] | None
    classes: list[str] | None  #: what its classifier predicts (None: unknown)
    report: LoadReport


def load_source(spec: str, weights: str | None = None, *, strict: bool = False) -> Source:
    """The network to fine-tune: ``torchvision:ARCH`` (with ``weights``) or a convzoo run."""
    if spec.startswith(TORCHVISION):
        return load_torchvision(spec[len(TORCHVISION) :], weights, strict=strict)
    if weights is not None:
        raise FinetuneError(
            f"--weights is for torchvision:ARCH sources; {spec} carries its own weights"
        )
    return load_run(spec, strict=strict)


def load_run(source: str | Path, *, strict: bool = False) -> Source:
    """One of our runs (directory or ``model.safetensors``): same architecture and options."""
    path = weights_path(source)
    if path.is_file() and path.suffix != ".safetensors":
        raise FinetuneError(
            f"--from takes a convzoo run directory, its model.safetensors or torchvision:ARCH; "
            f"for a torchvision state dict use --from torchvision:ARCH --weights {path}"
        )
    tensors, meta = load_weights(path)
    if "model" not in meta:
        raise CheckpointError(
            f"{path} carries no convzoo metadata (it was not written by convzoo train); for "
            f"torchvision weights use --from torchvision:ARCH --weights {path}"
        )
    model = create_model(
        meta["model"],
        num_classes=meta["num_classes"],
        in_channels=meta["in_channels"],
        **meta.get("model_options", {}),
    )
    report = load_into(model, tensors, what=str(path), strict=strict)
    return Source(
        model=model,
        description=f"{meta['model']} trained on {meta.get('dataset')}"
        + (f" ({meta['subset']})" if meta.get("subset") else "")
        + f", {path}",
        image_size=int(meta["image_size"]),
        mean=tuple(meta["mean"]) if meta.get("mean") is not None else None,
        std=tuple(meta["std"]) if meta.get("std") is not None else None,
        classes=list(meta["classes"]) if meta.get("classes") else None,
        report=report,
    )


def load_torchvision(arch: str, weights: str | None, *, strict: bool = False) -> Source:
    """torchvision's ``arch`` with weights from a file or from torchvision's weights registry.

    A file is taken to hold torchvision's ImageNet weights of ``arch``: the input size and
    normalization come from torchvision's metadata of its DEFAULT weights (for a weights name,
    from that name's). The network is built with the file's classifier and stem sizes, so a
    file that was itself fine-tuned (10 classes, gray stem) loads too.
    """
    if arch not in TORCHVISION_ARCHS:
        raise UnknownNameError(
            f"no torchvision architecture {arch!r} in the zoo; choose one of: "
            + ", ".join(TORCHVISION + a for a in TORCHVISION_ARCHS)
        )
    if weights is None:
        raise FinetuneError(
            f"torchvision:{arch} needs --weights: a state-dict file (.pth or .safetensors) or "
            f"DEFAULT for torchvision's own (downloaded when online)"
        )
    named = weights in weights_names(arch) and not Path(weights).exists()
    info = pretrained_weights(arch, weights if named else "DEFAULT")
    path = torchvision_weights_file(info) if named else Path(weights)
    tensors = load_state_dict_file(path)
    name = PREFIX + arch
    with torch.device("meta"):  # names of the stem and classifier tensors, no memory
        probe = create_model(name, num_classes=1000, in_channels=3)
    stem = tensors.get(first_conv(probe)[0] + ".weight")
    head = tensors.get(probe.classifier_path + ".weight")
    num_classes = int(head.shape[0]) if head is not None and head.dim() == 2 else 1000
    in_channels = int(stem.shape[1]) if stem is not None and stem.dim() == 4 else 3
    model = create_model(name, num_classes=num_classes, in_channels=in_channels)
    report = load_into(model, tensors, what=str(path), strict=strict)
    mean, std = info.mean, info.std
    if in_channels != len(mean):  # a file fine-tuned on other channels: adapt its metadata
        mean, std = adapt_normalization(mean, std, in_channels)
    return Source(
        model=model,
        description=f"torchvision {arch}, weights {path}",
        image_size=info.image_size,
        mean=mean,
        std=std,
        classes=list(info.categories) if num_classes == len(info.categories) else None,
        report=report,
    )


def torchvision_weights_file(info: PretrainedWeights, timeout_s: float = 60.0) -> Path:
    """torchvision's weights file in torch's hub cache, downloaded there if absent.

    Offline the error says which file to fetch and that ``--weights PATH`` takes it.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / info.filename
    if cached.is_file():
        return cached
    match = torch.hub.HASH_REGEX.search(info.filename)
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout_s)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            info.url, str(cached), hash_prefix=match.group(1) if match else None, progress=False
        )
    except (OSError, RuntimeError, ValueError) as e:  # URLError, timeouts, hash mismatch
        reason = str(getattr(e, "reason", e)).splitlines()[0][:120]
        raise CheckpointError(
            f"cannot download torchvision's {info.arch} weights {info.name} ({reason}); fetch "
            f"{info.url} where there is internet and give the file with "
            f"--weights PATH/{info.filename} (or put it in {cached.parent}/)"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return cached


# -- adapting the source to the new data ----------------------------------------------------
def adapt_input_channels(model: nn.Module, channels: int) -> str | None:
    """Make the input convolution take ``channels`` channels; say how (None: nothing to do).

    RGB -> gray sums the stem's weights over the colour channels. Convolution is linear, so
    for a gray image ``g`` the adapted stem computes ``sum_c W_c * g``, which is exactly what
    the RGB stem computes on the image with ``g`` copied into all three channels (zero padding
    included): the adapted network's output on ``g`` equals the original network's output on
    the replicated image, i.e. it sees a gray image as it would a gray photograph. Averaging
    instead would divide every activation of the stem by 3 and throw off the batch norm after
    it. Gray -> ``channels``: the weights are copied into every channel and divided by the
    count, which keeps the output on gray-looking images.
    """
    old = model.in_channels
    if channels == old:
        return None
    path, conv = first_conv(model)
    if conv.in_channels != old or conv.groups != 1:
        raise FinetuneError(
            f"cannot adapt {getattr(model, 'model_name', '')} to {channels}-channel images"
        )
    w = conv.weight.detach()
    if channels == 1:
        new, how = w.sum(dim=1, keepdim=True), f"{old}-channel stem {path} summed to 1 channel"
    elif old == 1:
        new = w.repeat(1, channels, 1, 1) / channels
        how = f"1-channel stem {path} copied to {channels} channels / {channels}"
    else:
        raise FinetuneError(
            f"the source takes {old}-channel images and the data has {channels} channels; "
            f"only RGB -> gray and gray -> any are adapted"
        )
    conv.weight = nn.Parameter(new.clone(), requires_grad=conv.weight.requires_grad)
    conv.in_channels = channels
    model.in_channels = channels
    if hasattr(model, "model_kwargs"):
        model.model_kwargs["in_channels"] = channels
    return how


def adapt_normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The source's normalization for ``channels``-channel inputs.

    Gray after an RGB stem (see :func:`adapt_input_channels`): the network sees the gray
    channel normalized once and copied into R, G and B, so one mean and std must stand for
    three. We take the averages (ImageNet: mean 0.449, std 0.226): a gray value is about the
    average of its R, G and B values, and then each colour channel receives inputs within
    0.16 of its own standardization ((0.485 - 0.449) / 0.229 for red, the largest gap).
    Gray -> several channels: the gray statistics for each channel.
    """
    if mean is None or std is None or len(mean) == channels:
        return (tuple(mean), tuple(std)) if mean is not None and std is not None else (None, None)
    if channels == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    if len(mean) == 1:
        return tuple(mean) * channels, tuple(std) * channels
    raise FinetuneError(f"cannot adapt {len(mean)}-channel normalization to {channels} channels")


# -- freezing and learning rates ------------------------------------------------------------
def frozen_stages(
    model: nn.Module, freeze: int = 0, freeze_until: str | None = None
) -> list[tuple[str, nn.Module]]:
    """The bottom stages ``--freeze N`` / ``--freeze-until STAGE`` hold fixed."""
    stages = model.stages
    names = [n for n, _ in stages]
    label = getattr(model, "model_name", type(model).__name__)
    if freeze_until is not None:
        if freeze_until not in names:
            raise FinetuneError(
                f"{label} has no stage {freeze_until!r}; its stages are {', '.join(names)}"
            )
        freeze = names.index(freeze_until) + 1
    if not 0 <= freeze <= len(stages):
        raise FinetuneError(
            f"cannot freeze {freeze} stages: {label} has {len(stages)} stages ({', '.join(names)})"
        )
    return stages[:freeze]


class FreezeStages(Callback):
    """Holds ``modules`` fixed until epoch ``unfreeze_at`` (1-based; None: to the end).

    Frozen modules get ``requires_grad=False`` (no gradient is computed, and SGD/AdamW skip
    parameters whose gradient is None, weight decay and momentum included) and run in eval
    mode: batch norm normalizes with, and keeps, the source's running statistics (a batch of a
    few new images would otherwise overwrite statistics estimated on the whole pretraining
    set), dropout is off. The optimizer holds every parameter from the start, so unfreezing
    only flips ``requires_grad`` and a checkpoint's optimizer state fits at any epoch; the
    state is re-derived from the epoch at each epoch's start (after the loop's
    ``model.train()``), which is what makes a resumed run exact.
    """

    def __init__(self, modules: Sequence[nn.Module], unfreeze_at: int | None = None) -> None:
        self.modules = list(modules)
        self.unfreeze_at = unfreeze_at

    def frozen(self, epoch: int) -> bool:
        """Whether the modules are held fixed in 0-based ``epoch``."""
        return self.unfreeze_at is None or epoch + 1 < self.unfreeze_at

    def apply(self, epoch: int) -> None:
        frozen = self.frozen(epoch)
        for m in self.modules:
            m.requires_grad_(not frozen)
            if frozen:
                m.eval()

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.apply(trainer.epoch)


def param_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """Every parameter at ``lr`` except the classifier's, at ``lr * head_lr_mult``."""
    head = list(model.get_classifier().parameters())
    ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": body, "lr": lr, "name": "body"},
        {"params": head, "lr": lr * head_lr_mult, "name": "head"},
    ]


class WriteRecord(Callback):
    """Writes the fine-tuning record into the run directory once it exists."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path, self.record = path, record

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.is_main and not self.path.exists():
            atomic_write_json(self.path, self.record)


# -- the run --------------------------------------------------------------------------------
def _prepare_data(
    cfg: TrainConfig, data: tuple[ImageDataset, ImageDataset | None] | None
) -> tuple[ImageDataset, ImageDataset | None]:
    if data is None:
        return load_data(cfg)
    train_data, test_data = data
    return (
        apply_subset(train_data, cfg.subset),
        apply_subset(test_data, cfg.subset) if test_data is not None else None,
    )


def run_finetune(
    ft: FinetuneConfig,
    overrides: dict[str, Any],
    *,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    recipe: str = "finetune",
    callbacks: list[Callback] | None = None,
    save: bool = True,
    stdout: Any = None,
) -> RunResult:
    """Fine-tune ``ft.source`` with the :class:`TrainConfig` values in ``overrides`` (only
    those the user set; the rest come from the source and then from ``recipe``)."""
    out = stdout or sys.stdout
    ft.validate()
    src = load_source(ft.source, ft.weights, strict=ft.strict)
    model = src.model
    frozen = frozen_stages(model, ft.freeze, ft.freeze_until)  # before loading any data
    options = {
        k: v for k, v in model.model_kwargs.items() if k not in ("num_classes", "in_channels")
    }
    values = {"model": model.model_name, "model_options": options, "image_size": src.image_size}
    # inputs are prepared as the source saw them: its mean/std, or pixels in [0, 1]
    values["normalize"] = src.mean is not None
    cfg = resolve_config({**values, **overrides}, overrides.get("recipe", recipe))
    if data is not None and "dataset" not in overrides:
        cfg = dataclasses.replace(cfg, dataset=data[0].name)
    if save and cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(default_run_dir(f"{cfg.model}-finetune")))
    train_data, test_data = _prepare_data(cfg, data)

    notes = [f"from {src.description}"]
    if not src.report.clean:
        notes.append(f"weights: {src.report}")
    how = adapt_input_channels(model, train_data.in_channels)
    if how:
        notes.append(how)
    mean, std = (
        adapt_normalization(src.mean, src.std, train_data.in_channels)
        if cfg.normalize
        else (None, None)
    )
    same_classes = src.classes is not None and src.classes == list(train_data.classes)
    if ft.reset_head or not same_classes:
        torch.manual_seed(cfg.seed)  # the same new head for the same seed
        head = model.reset_classifier(train_data.num_classes)
        xavier_init(head)
        notes.append(
            f"new head {model.classifier_path} ({train_data.num_classes} classes, Xavier init, "
            f"lr x{ft.head_lr_mult:g})"
        )
    else:
        notes.append(f"head kept (same classes), lr x{ft.head_lr_mult:g}")
    freezer = FreezeStages([m for _, m in frozen], ft.unfreeze_at)
    freezer.apply(0)
    if frozen:
        notes.append(
            f"frozen stages {', '.join(n for n, _ in frozen)} of {len(model.stages)}"
            + (f" until epoch {ft.unfreeze_at}" if ft.unfreeze_at else "")
        )
    if mean is not None:
        notes.append(
            f"input {cfg.image_size} px, normalized with the source's mean "
            f"{_fmt(mean)} std {_fmt(std)}"
        )
    print("fine-tuning " + "; ".join(notes), file=out, flush=True)

    record = {
        "finetune": ft.to_dict(),
        "source": src.description,
        "normalization": {"mean": mean, "std": std},
        "frozen_stages": [n for n, _ in frozen],
        "weights_report": src.report.to_dict(),
    }
    cbs: list[Callback] = [freezer]
    if save:
        cbs.append(WriteRecord(Path(cfg.out) / RECORD, record))
    return train(
        cfg,
        model=model,
        data=(train_data, test_data),
        param_groups=param_groups(model, cfg.lr, ft.head_lr_mult),
        normalization=(mean, std) if mean is not None else None,
        callbacks=cbs + (callbacks or []),
        save=save,
        stdout=out,
    )


def resume_finetune(
    run_dir: str | Path,
    changes: dict[str, Any] | None = None,
    *,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    callbacks: list[Callback] | None = None,
    stdout: Any = None,
) -> RunResult:
    """Continue a fine-tuning run from its last checkpoint, exactly as if never stopped."""
    from .run import build_model

    run_dir = Path(run_dir)
    path = run_dir / RECORD
    if not path.is_file():
        raise FinetuneError(
            f"{run_dir} is not a fine-tuning run (no {RECORD}); resume it with "
            f"convzoo train --resume {run_dir}"
        )
    if not (run_dir / Checkpointer.FILENAME).is_file():
        raise CheckpointError(f"{run_dir} has no {Checkpointer.FILENAME} to resume from")
    try:
        record = json.loads(path.read_text())
        ft = FinetuneConfig.from_dict(record["finetune"])
        norm = record["normalization"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FinetuneError(f"{path} is damaged; the run cannot be resumed") from None
    cfg = resume_config(run_dir, changes or {})
    train_data, test_data = _prepare_data(cfg, data)
    model = build_model(cfg, train_data)  # the fine-tuned architecture; weights: checkpoint
    frozen = frozen_stages(model, ft.freeze, ft.freeze_until)
    freezer = FreezeStages([m for _, m in frozen], ft.unfreeze_at)
    return train(
        cfg,
        model=model,
        data=(train_data, test_data),
        resume=run_dir,
        param_groups=param_groups(model, cfg.lr, ft.head_lr_mult),
        normalization=(norm["mean"], norm["std"]) if norm.get("mean") is not None else None,
        callbacks=[freezer, *(callbacks or [])],
        stdout=stdout,
    )


def _fmt(values: Sequence[float] | None) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values or ()) + ")"


def finetune(
    source: str | Path | None,
    data: ImageDataset | tuple[ImageDataset, ImageDataset | None] | str | None = None,
    *,
    weights: str | None = None,
    test_data: ImageDataset | None = None,
    freeze: int = 0,
    freeze_until: str | None = None,
    unfreeze_at: int | None = None,
    head_lr_mult: float = 10.0,
    reset_head: bool = False,
    strict: bool = False,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    recipe: str = "finetune",
    out: str | Path | None = None,
    resume: str | Path | None = None,
    callbacks: list[Callback] | None = None,
    verbose: bool = True,
    **config: Any,
) -> RunResult:
    """Fine-tune a trained network on ``data``; returns the run's history, metrics and model.

    ``source``: one of our run directories (or its ``model.safetensors``), or
    ``"torchvision:resnet18"`` with ``weights`` (a state-dict file, or ``"DEFAULT"`` to download
    torchvision's). ``data``: a data set name, an :class:`ImageDataset` (with ``test_data``) or a
    ``(train, test)`` pair; ``subset="classes=5-9,shots=20"`` restricts it. The defaults are the
    chapter's recipe (``recipe="finetune"``: small learning rate, few epochs; the new head at
    ``head_lr_mult`` times the rate); any :class:`TrainConfig` field can be passed as a keyword.
    With ``out`` the run directory is written there, without it nothing is written;
    ``resume=RUN_DIR`` continues an interrupted fine-tuning run (``source`` may then be None).
    """
    if isinstance(data, ImageDataset):
        data = (data, test_data)
    if isinstance(data, str):
        config["dataset"], data = data, None
    overrides: dict[str, Any] = {
        k: v for k, v in dict(epochs=epochs, lr=lr, batch_size=batch_size).items() if v is not None
    }
    overrides.update(config)
    if out is not None:
        overrides["out"] = str(out)
    stream = None if verbose else io.StringIO()
    if resume is not None:
        if source is not None:
            raise FinetuneError("give a source to start from or a run to resume, not both")
        return resume_finetune(resume, overrides, data=data, callbacks=callbacks, stdout=stream)
    ft = FinetuneConfig(
        source=str(source) if source is not None else "",
        weights=weights,
        freeze=freeze,
        freeze_until=freeze_until,
        unfreeze_at=unfreeze_at,
        head_lr_mult=head_lr_mult,
        reset_head=reset_head,
        strict=strict,
    )
    return run_finetune(
        ft,
        overrides,
        data=data,
        recipe=recipe,
        callbacks=callbacks,
        save=out is not None,
        stdout=stream,
    )
