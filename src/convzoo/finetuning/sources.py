"""Where a fine-tuning starts: one of our runs, or a torchvision network with its weights.

:func:`load_source` returns a :class:`Pretrained`: the network with its weights loaded, and how
its inputs were prepared (input size, normalization) so that new data can be prepared the same
way. Loading is strict about the body of the network (every tensor it keeps must come from the
file) and lenient about the classifier, which fine-tuning replaces.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, FinetuneError, UnknownNameError
from ..io import load_state_dict_file, load_weights
from ..models import create_model
from ..models.tv import (
    PREFIX,
    TORCHVISION_ARCHS,
    PretrainedWeights,
    first_conv,
    pretrained_weights,
    weights_names,
)
from ..train.meta import MODULE_CLASS, ModelMeta
from ..trained import LoadReport, build_trained, load_fitting, weights_file
from .adapt import adapt_normalization

TORCHVISION = "torchvision:"


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
class Pretrained:
    """A trained network to start from, and how its inputs were prepared."""

    model: nn.Module
    description: str
    image_size: int  #: side (pixels) the network was trained at
    mean: tuple[float, ...] | None  #: its input normalization (None: pixels in [0, 1])
    std: tuple[float, ...] | None
    classes: list[str] | None  #: what its classifier predicts (None: unknown)
    report: LoadReport


def load_source(spec: str, weights: str | None = None, *, strict: bool = False) -> Pretrained:
    """The network to fine-tune: ``torchvision:ARCH`` (with ``weights``) or a convzoo run."""
    if spec.startswith(TORCHVISION):
        return load_torchvision(spec[len(TORCHVISION) :], weights, strict=strict)
    if weights is not None:
        raise FinetuneError(
            f"--weights-file is for torchvision:ARCH sources; {spec} carries its own weights"
        )
    return load_run(spec, strict=strict)


def load_run(source: str | Path, *, strict: bool = False) -> Pretrained:
    """One of our runs (directory or ``model.safetensors``): same architecture and options."""
    path = weights_file(source)
    if path.is_file() and path.suffix != ".safetensors":
        raise FinetuneError(
            f"SOURCE is a convzoo run directory, its model.safetensors or torchvision:ARCH; for a "
            f"torchvision state dict use convzoo finetune torchvision:ARCH --weights-file {path}"
        )
    tensors, meta = load_weights(path)
    if "model" not in meta:
        raise CheckpointError(
            f"{path} carries no convzoo metadata (it was not written by convzoo train); for "
            f"torchvision weights use convzoo finetune torchvision:ARCH --weights-file {path}"
        )
    if meta.get(MODULE_CLASS):
        raise FinetuneError(
            f"{path} holds a network defined in Python ({meta[MODULE_CLASS]}); fine-tuning "
            f"needs a zoo model (named stages, a classifier to replace): load yours with "
            f"convzoo.load_model(path, model=...) and train it further with convzoo.fit"
        )
    model = build_trained(path, tensors, meta)  # checked, and fits the file exactly
    m = ModelMeta.from_dict(meta, source=str(path))
    return Pretrained(
        model=model,
        description=f"{m.model} trained on {m.dataset}"
        + (f" ({m.subset})" if m.subset else "")
        + f", {path}",
        image_size=m.image_size,
        mean=tuple(m.mean) if m.mean is not None else None,
        std=tuple(m.std) if m.std is not None else None,
        classes=list(m.classes) or None,
        report=LoadReport(loaded=len(tensors)),
    )


def load_torchvision(arch: str, weights: str | None, *, strict: bool = False) -> Pretrained:
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
            f"torchvision:{arch} needs --weights-file: a state-dict file (.pth or .safetensors) or "
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
    return Pretrained(
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

    Offline the error says which file to fetch and that ``--weights-file PATH`` takes it.
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
            f"--weights-file PATH/{info.filename} (or put it in {cached.parent}/)"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return cached
