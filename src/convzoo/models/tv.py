"""torchvision's ImageNet networks with the zoo's interface, for fine-tuning their weights.

``create_model("tv_resnet18", num_classes=5, in_channels=1)`` is torchvision's ``resnet18``
with ``get_classifier``/``reset_classifier``, named ``stages`` (what ``--freeze N`` counts),
``min_input_size`` and the input checks of every zoo model. The wrapper adopts torchvision's
modules under their own names, so its ``state_dict`` keys are exactly torchvision's: a
torchvision state dict (``resnet18-f37072fd.pth``) loads as is, and a fine-tuned network's
``model.safetensors`` loads back into plain ``torchvision.models.resnet18`` too.

Only the builders and the weights' metadata live here (no downloads, no training): fetching
the weights is :func:`convzoo.finetuning.sources.torchvision_weights_file`'s job.
torchvision is imported on first use, so ``import convzoo`` stays as fast as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UnknownNameError
from ._base import ZooModel
from ._registry import register_model

#: stage name -> module paths (relative to the model) run in that order
StagePlan = list[tuple[str, list[str]]]


def _resnet_stages(net: nn.Module) -> StagePlan:
    """ResNet: the stem (7x7 conv, batch norm, ReLU, max-pool), then ``layer1``-``layer4``."""
    return [("stem", ["conv1", "bn1", "relu", "maxpool"])] + [
        (f"layer{i}", [f"layer{i}"]) for i in range(1, 5)
    ]


def _pooled_stages(net: nn.Module) -> StagePlan:
    """AlexNet, VGG: ``features`` cut after each max-pool, as the book cuts VGG into blocks."""
    stages: StagePlan = []
    current: list[str] = []
    for i, layer in enumerate(net.features):
        current.append(f"features.{i}")
        if isinstance(layer, nn.MaxPool2d):
            stages.append((f"b{len(stages) + 1}", current))
            current = []
    if current:
        stages.append((f"b{len(stages) + 1}", current))
    return stages


def _block_stages(net: nn.Module) -> StagePlan:
    """MobileNet, EfficientNet: each child of ``features`` (stem, blocks, last conv)."""
    return [(f"b{i + 1}", [f"features.{i}"]) for i in range(len(net.features))]


@dataclass(frozen=True)
class TorchvisionArch:
    """How a torchvision network splits into the zoo's ``stages -> pool -> head``.

    Every network here computes ``head(flatten(pool(stages(x))))``: that is its whole
    ``forward`` in torchvision, so the wrapper computes exactly torchvision's function.
    """

    builder: str  #: function name in ``torchvision.models``
    stages: Callable[[nn.Module], StagePlan]
    pool: str  #: the global pooling module
    head: str  #: the module applied to the flattened pooled features
    classifier: str  #: the last linear layer (replaced by ``reset_classifier``)
    min_size: int = 1  #: smallest input side (pixels)


#: one per layout; torchvision's other ResNets, VGGs, MobileNets and EfficientNets are one
#: line each (kept out so that the registry-wide tests stay fast on 2 cores)
TORCHVISION_ARCHS: dict[str, TorchvisionArch] = {
    "resnet18": TorchvisionArch("resnet18", _resnet_stages, "avgpool", "fc", "fc"),
    "alexnet": TorchvisionArch(
        "alexnet", _pooled_stages, "avgpool", "classifier", "classifier.6", min_size=63
    ),
    "mobilenet_v3_small": TorchvisionArch(
        "mobilenet_v3_small", _block_stages, "avgpool", "classifier", "classifier.3"
    ),
}

#: registry names are torchvision's with this prefix (``tv_resnet18``)
PREFIX = "tv_"


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d | nn.Conv1d]:
    """The network's input convolution (the first ``Conv2d``, or ``Conv1d`` in a sequence
    model, registered) and its path."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d)):
            return name, m
    raise ValueError(f"{type(model).__name__} has no convolution layer")


class TorchvisionNet(ZooModel):
    """A torchvision network whose modules are this module's children (same state-dict keys)."""

    def __init__(self, arch: TorchvisionArch, *, num_classes: int, in_channels: int) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        import torchvision

        net = getattr(torchvision.models, arch.builder)(weights=None, num_classes=num_classes)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.arch = arch
        self.classifier_path = arch.classifier
        self._stage_plan = arch.stages(self)
        if in_channels != 3:  # torchvision builds RGB stems; same layer for other channels
            path, conv = first_conv(self)
            parent, _, leaf = path.rpartition(".")
            new = nn.Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                dilation=conv.dilation,
                groups=conv.groups,
                bias=conv.bias is not None,
                padding_mode=conv.padding_mode,
            )
            setattr(self.get_submodule(parent) if parent else self, leaf, new)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for _, paths in self._stage_plan:
            for path in paths:
                x = self.get_submodule(path)(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.get_submodule(self.arch.pool)(x), 1)
        return self.get_submodule(self.arch.head)(x)

    @property
    def stages(self) -> list[tuple[str, nn.Module]]:
        # views on the children (not registered: the state dict stays torchvision's)
        return [
            (name, nn.Sequential(*(self.get_submodule(p) for p in paths)))
            for name, paths in self._stage_plan
        ]

    @property
    def parts(self) -> list[tuple[str, nn.Module]]:
        # forward_head as a module: global pooling, flatten, torchvision's head
        head = nn.Sequential(
            self.get_submodule(self.arch.pool), nn.Flatten(), self.get_submodule(self.arch.head)
        )
        return [*self.stages, ("head", head)]


def _register(arch_name: str, arch: TorchvisionArch) -> None:
    def build(*, num_classes: int = 1000, in_channels: int = 3) -> TorchvisionNet:
        return TorchvisionNet(arch, num_classes=num_classes, in_channels=in_channels)

    build.__name__ = build.__qualname__ = PREFIX + arch_name
    build.__doc__ = (
        f"torchvision's {arch_name}, to fine-tune its ImageNet weights.\n\n"
        f"``convzoo finetune torchvision:{arch_name} --weights-file FILE|DEFAULT``; built "
        f"with torchvision's layers and state-dict keys, and the zoo's interface."
    )
    register_model(
        PREFIX + arch_name, image_size=224, family="torchvision", min_size=arch.min_size
    )(build)


for _name, _arch in TORCHVISION_ARCHS.items():
    _register(_name, _arch)


@dataclass(frozen=True)
class PretrainedWeights:
    """What torchvision says of one set of its weights (metadata only: nothing downloaded)."""

    arch: str
    name: str  #: e.g. ``IMAGENET1K_V1``
    url: str
    image_size: int  #: the side of the center crop the network was trained and evaluated on
    mean: tuple[float, ...]  #: per-channel (RGB) normalization of pixels in [0, 1]
    std: tuple[float, ...]
    categories: tuple[str, ...] = field(default=(), repr=False)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def weights_names(arch: str) -> list[str]:
    """The names torchvision gives ``arch``'s weights (``DEFAULT``, ``IMAGENET1K_V1``, ...)."""
    from torchvision.models import get_model_weights

    return list(dict.fromkeys(["DEFAULT", *get_model_weights(arch).__members__]))


def pretrained_weights(arch: str, weights: str = "DEFAULT") -> PretrainedWeights:
    """torchvision's metadata of ``weights`` (``DEFAULT`` or a name like ``IMAGENET1K_V1``)
    for ``arch``: where the file is, and the input size and normalization it expects."""
    from torchvision.models import get_model_weights

    if arch not in TORCHVISION_ARCHS:
        raise UnknownNameError(
            f"no torchvision architecture {arch!r} in the zoo; known: "
            f"{', '.join(TORCHVISION_ARCHS)}"
        )
    enum = get_model_weights(arch)
    try:
        w = enum[weights]
    except KeyError:
        raise UnknownNameError(
            f"torchvision has no {arch} weights {weights!r}; choose DEFAULT or one of "
            f"{', '.join(enum.__members__)}, or give a file path"
        ) from None
    t = w.transforms()
    return PretrainedWeights(
        arch=arch,
        name=w.name,
        url=w.url,
        image_size=int(t.crop_size[0]),
        mean=tuple(t.mean),
        std=tuple(t.std),
        categories=tuple(w.meta.get("categories", ())),
    )
