"""Training configuration: typed defaults in one place, recipes that fill them per model.

CLI flags map one-to-one onto :class:`TrainConfig` fields; a recipe supplies the values the
user did not give; the resolved config is saved with every run (``config.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConvzooError, UnknownNameError


class ConfigError(ConvzooError, ValueError):
    """A configuration value that cannot work (lr <= 0, unknown optimizer, ...)."""


@dataclass
class TrainConfig:
    # what to train on what
    model: str = "speednet"
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    #: class / few-shot subset spec applied to both splits (see convzoo.data.subsets)
    subset: str | None = None
    recipe: str = "fast"
    # optimisation
    epochs: int = 10
    batch_size: int = 256  #: per process
    lr: float = 0.2  #: peak learning rate
    optimizer: str = "nesterov"  #: sgd | nesterov | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  #: constant | onecycle | cosine
    warmup: float = 0.2  #: fraction of all steps spent warming up linearly (onecycle/cosine)
    label_smoothing: float = 0.1
    grad_clip: float | None = None  #: max global gradient norm
    init: str = "default"  #: default (PyTorch's) | xavier (the book's train_ch6)
    # data pipeline
    augment: str = "hflip"  #: augmentation spec, see convzoo.data.augment
    image_size: int | None = None  #: None: the model's default input size
    normalize: bool = True  #: per-channel mean/std of the training set (False: [0, 1] only)
    drop_last: bool = True
    tta: bool = False  #: evaluate on the image and its mirror image, average the logits
    # execution
    device: str = "auto"
    precision: str = "auto"  #: auto | fp32 | bf16 | fp16
    channels_last: bool | None = None  #: None: on where it measures faster (CNNs in bf16)
    compile: bool = False
    seed: int = 0
    strategy: str = "single"  #: single | scratch | dp | ddp
    devices: str | None = None  #: device list for the scratch strategy, e.g. "cpu,cpu"
    sync_bn: bool = False
    # run control
    patience: int | None = None  #: early stopping: epochs without a better test accuracy
    ckpt_every: int | None = None  #: also checkpoint every N optimizer steps
    out: str | None = None  #: run directory (default runs/<time>-<model>)
    tensorboard: bool = False
    eval_batch_size: int = 1024

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = set(cls.field_names())
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.warmup < 1, f"warmup must be a fraction in [0, 1), got {self.warmup}"),
            (
                0 <= self.label_smoothing < 1,
                f"label smoothing must be in [0, 1), got {self.label_smoothing}",
            ),
            (self.grad_clip is None or self.grad_clip > 0, "grad clip must be > 0"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1"),
            (self.ckpt_every is None or self.ckpt_every >= 1, "ckpt-every must be >= 1"),
            (self.image_size is None or self.image_size >= 1, "image size must be >= 1"),
            (
                not self.devices or self.strategy in ("scratch", "dp"),
                "--devices lists the devices of --strategy scratch or dp; add one of them",
            ),
            (
                not self.sync_bn or self.strategy == "ddp",
                "--sync-bn synchronises batch norm across processes: it needs --strategy ddp",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        choices = {
            "optimizer": ("sgd", "nesterov", "adamw"),
            "schedule": ("constant", "onecycle", "cosine"),
            "init": ("default", "xavier"),
            "precision": ("auto", "fp32", "bf16", "fp16"),
            "strategy": ("single", "scratch", "dp", "ddp"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise UnknownNameError(
                    f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}"
                )
