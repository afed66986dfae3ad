"""``convzoo lr-find``: sweep the learning rate on training data and suggest one."""

from __future__ import annotations

import argparse

from ..train.config import TrainConfig
from ._common import add_dataclass_flags, given_values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lr-find",
        help="sweep the learning rate over a few hundred training steps and suggest one",
        description="The learning-rate finder: one short run on a copy of the network raises "
        "the lr exponentially and records the training loss; it suggests the lr where the "
        "smoothed loss falls fastest. Takes every convzoo train flag (model, recipe, data, "
        "optimizer...); reads training data only.",
    )
    p.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--plot", default="lr-find.png", metavar="PNG", help="where to draw the sweep")
    add_dataclass_flags(p, TrainConfig, skip=("out", "patience", "ckpt_every", "tensorboard"))
    p.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from ..train.lr_find import lr_find
    from ..train.run import resolve_config
    from ..viz import plot_lr_find

    cfg = resolve_config(given_values(args, TrainConfig))
    result = lr_find(cfg, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    title = f"lr finder: {cfg.model} on {cfg.dataset}, {cfg.optimizer}, batch {cfg.batch_size}"
    plot_lr_find(result, args.plot, title=title)
    print(result.describe())
    print(f"plot: {args.plot}")
    return 0
