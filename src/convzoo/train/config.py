"""Training configuration: every setting, its default, its help text and its choices, once.

CLI flags are generated from :class:`TrainConfig` one-to-one (``batch_size`` ->
``--batch-size``, the help text from the field's metadata); a recipe supplies the values the
user did not give (``convzoo.train.recipes``); the resolved config is saved with every run
(``config.json``). The defaults are the ``fast`` recipe's for a network with batch norm (the
default ``speednet``): the recipe states only where other networks or recipes differ.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

# plain data only: the command line parses and checks a config before it imports torch
from ..catalog import (
    DEFAULT_DATASET,
    IN_MEMORY,
    INITS,
    MODEL_MICROBATCHES,
    MONITORS,
    OPTIMIZERS,
    PIPELINE_MICROBATCHES,
    PIPELINE_SCHEDULES,
    PRECISIONS,
    RECIPES,
    SCHEDULES,
    STRATEGIES,
)
from ..errors import ConvzooError, UnknownNameError

#: largest input side in pixels: 4096 px is 200 MB of float32 per RGB image (a side of 100,000
#: would ask 40 GB for one)
MAX_IMAGE_SIZE = 4096
#: longest input of a 1-D (time-series) model in steps: 4 MB of float32 per channel (UEA's
#: longest series, EigenWorms, has 17,984 steps)
MAX_SERIES_LENGTH = 1 << 20


def max_input_side(model: str) -> int:
    """The largest ``image_size`` of ``model``: a series length for 1-D models, else a side in
    pixels (an unknown name gets the latter; it is refused by its own check)."""
    from ..models import get_model_entry

    try:
        return MAX_SERIES_LENGTH if get_model_entry(model).spatial_dims == 1 else MAX_IMAGE_SIZE
    except UnknownNameError:
        return MAX_IMAGE_SIZE


def _kinds(annotation: str) -> tuple[type, ...]:
    """The types a field annotated ``annotation`` (a string: ``int | None``) accepts; an int is
    a float too."""
    names = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    kinds: tuple[type, ...] = ()
    for part in annotation.split("|"):
        part = part.strip()
        kinds += (dict,) if part.startswith("dict") else names.get(part, (type(None),))
    return kinds


#: the strategies that cut the network into parts (--split-at, --microbatches)
SPLITTING = ("model", "pipeline")


#: the field that opens each section of ``convzoo train --help``, and its title
GROUPS = {
    "model": "model",
    "dataset": "data",
    "recipe": "recipe and optimisation",
    "augment": "data pipeline",
    "device": "execution",
    "val_split": "evaluation (validation data chooses; the test set only reports)",
    "ckpt_every": "run",
}


class ConfigError(ConvzooError, ValueError):
    """A configuration value that cannot work (lr <= 0, unknown optimizer, ...)."""


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A config field with its help text and, for names, the allowed values; ``flag`` and
    ``metavar`` override the command-line flag's name (``--field-name``) and placeholder."""
    meta = {"help": help, "choices": choices, "flag": flag, "metavar": metavar}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # what to train on what
    model: str = setting("speednet", "model name (default: the recipe's; `convzoo models`)")
    model_options: dict[str, Any] = setting({}, "model option, e.g. -o width_ratio=4")
    dataset: str = setting(
        DEFAULT_DATASET,
        "fashion-mnist (default), mnist, cifar10, folder:PATH (class folders) or csv:FILE "
        "(path,label[,split] rows; docs/data.md)",
    )
    data_dir: str | None = setting(
        None, "where data sets are kept (default $CONVZOO_DATA or ~/.cache/convzoo)"
    )
    subset: str | None = setting(
        None, "class / few-shot subset, e.g. classes=5-9,shots=50,seed=1 (docs/data.md)"
    )
    skip_bad_images: bool = setting(
        False, "folder:/csv: data: leave out unreadable image files (listed) instead of stopping"
    )
    in_memory: str = setting(
        "auto",
        "folder:/csv: data: decode it into memory (fastest) or stream it from disk; auto: in "
        "memory when its pixels at the training size fit a quarter of the free memory",
        choices=IN_MEMORY,
    )
    cache: str | None = setting(
        None,
        "folder:/csv: data: decode and resize the images once into a memory-mapped file in "
        "DIR that later epochs and runs read (rewritten when the files change)",
        metavar="DIR",
    )
    recipe: str = setting(
        "fast",
        "fast: measured modern settings; d2l: the book's train_ch6 exactly; speedrun: time "
        "to accuracy; best: fast for longer (images: 30 epochs and flip TTA; series: 200 "
        "epochs); finetune: convzoo finetune's",
        choices=RECIPES,
    )
    # optimisation
    epochs: int = setting(10, "epochs to train")
    batch_size: int = setting(256, "examples per batch (per process)")
    lr: float = setting(0.2, "peak learning rate (per batch of --batch-size)")
    optimizer: str = setting("nesterov", "optimizer", choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(5e-4, "L2 weight decay")
    schedule: str = setting(
        "onecycle", "lr schedule (onecycle: linear warm-up, linear decay)", choices=SCHEDULES
    )
    warmup: float = setting(0.2, "fraction of the steps spent warming up the lr")
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy")
    grad_clip: float | None = setting(None, "clip the global gradient norm to this value")
    init: str = setting("default", "weight init (xavier: the book's)", choices=INITS)
    # data pipeline
    augment: str = setting("hflip", "augmentation spec, e.g. hflip,crop:4 ('' for none)")
    image_size: int | None = setting(
        None, "resize images to this side in pixels (default: the model's input size)"
    )
    max_length: int | None = setting(
        None,
        "resnet1d on longer series: fold each run of f steps into f channels (lossless) so "
        "that it computes over at most this many steps (default: never)",
        metavar="STEPS",
    )
    normalize: bool = setting(False, "normalize inputs with the training set's mean and std")
    drop_last: bool = setting(True, "drop the last incomplete training batch")
    tta: bool = setting(False, "evaluate on each test image and its mirror image")
    # execution
    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    precision: str = setting(
        "auto",
        "autocast precision (auto: on a CPU the fastest measured here, bf16 only where native)",
        choices=PRECISIONS,
    )
    channels_last: bool | None = setting(
        None, "channels-last memory format (default: on a CPU whichever measures faster here)"
    )
    compile: bool = setting(False, "torch.compile the model")
    deterministic: bool = setting(
        False, "deterministic GPU kernels: runs and resumes bitwise repeatable there (slower)"
    )
    seed: int = setting(0, "random seed (initial weights, data order, augmentation)")
    strategy: str = setting(
        "single", "how to use several devices (docs/multi-device.md)", choices=STRATEGIES
    )
    devices: str | None = setting(
        None, "device list for --strategy scratch, dp or model, e.g. cpu,cpu or cuda:0,cuda:1"
    )
    sync_bn: bool = setting(False, "synchronise batch-norm statistics across processes (ddp)")
    split_at: str | None = setting(
        None,
        "--strategy model or pipeline: the parts that start each next device's share, e.g. "
        "b3 (default: balanced by forward FLOPs; `convzoo summary MODEL --parts N`)",
        metavar="STAGE[,STAGE]",
    )
    microbatches: int | None = setting(
        None,
        "--strategy model or pipeline: cut each batch into this many equal micro-batches "
        f"(default {MODEL_MICROBATCHES} and {PIPELINE_MICROBATCHES}; batch norm then "
        "normalizes each on its own)",
        metavar="M",
    )
    pipeline_schedule: str = setting(
        PIPELINE_SCHEDULES[0], "--strategy pipeline's schedule", choices=PIPELINE_SCHEDULES
    )
    # choosing: on validation data carved out of the training split, never on the test set
    val_split: float = setting(
        0.1,
        "validation images set aside from the training split, stratified and seeded: a "
        "fraction (0.1) or a count (5000); 0: none (nothing can then be chosen)",
        metavar="N|FRACTION",
    )
    monitor: str = setting(
        "val_acc",
        "the validation figure that picks the kept weights (best.safetensors), early stopping "
        "and lr plateaus",
        choices=tuple(MONITORS),
    )
    patience: int | None = setting(
        None, "stop after this many epochs without a better --monitor value"
    )
    test_every: int = setting(
        1,
        "test every N epochs for the curves (0: only once, when training ends); the test set "
        "is only reported, so this changes no result, only the time spent",
        metavar="N",
    )
    # run control
    ckpt_every: int | None = setting(None, "also save a checkpoint every N optimizer steps")
    out: str | None = setting(None, "run directory (default runs/<time>-<model>)", metavar="DIR")
    tensorboard: bool = setting(False, "also write TensorBoard logs to RUN_DIR/tensorboard")
    eval_batch_size: int = setting(1024, "examples per evaluation batch")

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
        self.check_values()
        checks = [self._image_size_check(), *self._validation_checks(), *self._strategy_checks()]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def check_values(self) -> None:
        """Each value's type, range and choices: what needs neither the other settings nor
        torch, so the command line checks it before anything is loaded."""
        for f in dataclasses.fields(self):  # a hand-edited config.json may hold anything
            value = getattr(self, f.name)
            if not isinstance(value, _kinds(str(f.type))) or (
                isinstance(value, bool) and bool not in _kinds(str(f.type))
            ):
                raise ConfigError(f"{f.name} must be of type {f.type}, got {value!r}")
        for ok, msg in self._range_checks():
            if not ok:
                raise ConfigError(msg)
        for f in dataclasses.fields(self):
            allowed = f.metadata.get("choices")
            value = getattr(self, f.name)
            if allowed and value not in allowed:
                raise UnknownNameError(
                    f"unknown {f.name} {value!r}; choose one of: {', '.join(allowed)}"
                )

    def _range_checks(self) -> list[tuple[bool, str]]:
        return [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (0 < self.lr < math.inf, f"learning rate must be > 0 and finite, got {self.lr}"),
            (
                0 <= self.weight_decay < math.inf,
                f"weight decay must be >= 0 and finite, got {self.weight_decay}",
            ),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.warmup < 1, f"warmup must be a fraction in [0, 1), got {self.warmup}"),
            (
                0 <= self.label_smoothing < 1,
                f"label smoothing must be in [0, 1), got {self.label_smoothing}",
            ),
            (self.grad_clip is None or self.grad_clip > 0, "grad clip must be > 0"),
            (
                self.eval_batch_size >= 1,
                f"eval batch size must be >= 1, got {self.eval_batch_size}",
            ),
            (self.patience is None or self.patience >= 1, "patience must be >= 1"),
            (self.test_every >= 0, f"--test-every must be >= 0, got {self.test_every}"),
            (
                self.max_length is None or self.max_length >= 1,
                f"--max-length must be >= 1, got {self.max_length}",
            ),
            (self.ckpt_every is None or self.ckpt_every >= 1, "ckpt-every must be >= 1"),
            (
                self.image_size is None or self.image_size >= 1,
                f"image size must be >= 1 (pixels, or steps of a series), got {self.image_size}",
            ),
        ]

    def _image_size_check(self) -> tuple[bool, str]:
        most = max_input_side(self.model) if self.image_size is not None else MAX_IMAGE_SIZE
        return (
            self.image_size is None or self.image_size <= most,
            f"image size must be in 1..{most} (pixels, or steps of a series), "
            f"got {self.image_size}",
        )

    def _validation_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                self.val_split > 0 or not self.patience,
                "--patience stops on validation data, never on the test set: give --val-split "
                "(e.g. 0.1)",
            ),
            (
                self.val_split > 0 or self.schedule != "plateau",
                "--schedule plateau lowers the lr when the validation figure stalls: give "
                "--val-split (e.g. 0.1)",
            ),
            (
                self.val_split >= 0 and (self.val_split < 1 or float(self.val_split).is_integer()),
                f"--val-split must be a fraction in (0, 1) or a whole number of images, got "
                f"{self.val_split:g}",
            ),
        ]

    def _strategy_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                not self.devices or self.strategy in ("scratch", "dp", "model"),
                "--devices lists the replicas of --strategy scratch or dp, or the devices of "
                "--strategy model's parts; add one of them",
            ),
            (
                (self.split_at is None and self.microbatches is None) or self.strategy in SPLITTING,
                "--split-at and --microbatches cut the network of --strategy "
                f"{' or '.join(SPLITTING)}; add one of them",
            ),
            (
                self.pipeline_schedule == PIPELINE_SCHEDULES[0] or self.strategy == "pipeline",
                "--pipeline-schedule is the schedule of --strategy pipeline; add it",
            ),
            (
                self.strategy != "pipeline"
                or (self.grad_clip is None and self.precision != "fp16"),
                "--strategy pipeline cannot clip gradients (--grad-clip) or scale fp16 losses: "
                "each process sees only its own part's gradients",
            ),
            (
                self.microbatches is None or self.microbatches >= 1,
                f"microbatches must be >= 1, got {self.microbatches}",
            ),
            (
                self.microbatches is None
                or self.microbatches < 1
                or self.batch_size % self.microbatches == 0,
                f"--microbatches {self.microbatches} does not divide --batch-size "
                f"{self.batch_size}: micro-batches are of equal size",
            ),
            (
                not self.sync_bn or self.strategy == "ddp",
                "--sync-bn synchronises batch norm across processes: it needs --strategy ddp",
            ),
        ]
