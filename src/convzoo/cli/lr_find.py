"""``convzoo lr-find``: sweep the learning rate on training data and suggest one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train.config import GROUPS, TrainConfig
from ._common import add_dataclass_flags, add_out_dir, deprecated_alias, given_values, out_dir

#: TrainConfig fields the sweep does not read: the schedule, evaluation, several devices and
#: the run directory's (one short run on one device, nothing saved but the plot)
UNUSED = (
    "epochs", "lr", "schedule", "warmup", "grad_clip", "tta", "strategy", "devices", "sync_bn",
    "split_at", "microbatches", "pipeline_schedule", "monitor", "patience", "test_every",
    "ckpt_every", "out", "tensorboard", "eval_batch_size",
)  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lr-find",
        help="sweep the learning rate over a few hundred training steps and suggest one",
        description="The learning-rate finder: one short run on a copy of the network raises "
        "the lr exponentially and records the training loss; it suggests the lr where the "
        "smoothed loss falls fastest. Takes the convzoo train flags it uses (model, recipe, "
        "data, optimizer...); reads training data only.",
    )
    p.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    add_out_dir(p, "the plot, lr-find.png (default: the current folder)")
    deprecated_alias(p, "--plot", "--out DIR", dest="plot", metavar="PNG")
    add_dataclass_flags(p, TrainConfig, skip=UNUSED, groups=GROUPS)
    p.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args: argparse.Namespace) -> int:
    overrides = given_values(args, TrainConfig)
    TrainConfig(**overrides).check_values()  # before torch is imported
    plot = Path(args.plot) if getattr(args, "plot", None) else out_dir(args.out) / "lr-find.png"
    from ..train.lr_find import lr_find
    from ..train.run import resolve_config
    from ..viz import plot_lr_find

    cfg = resolve_config(overrides)
    result = lr_find(cfg, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    title = f"lr finder: {cfg.model} on {cfg.dataset}, {cfg.optimizer}, batch {cfg.batch_size}"
    plot_lr_find(result, plot, title=title)
    print(result.describe())
    print(f"plot: {plot}")
    return 0
