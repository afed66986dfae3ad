"""``convzoo train``.

Every :class:`~convzoo.train.TrainConfig` field is a flag (``batch_size`` -> ``--batch-size``,
help text and choices from the field); flags not given take the recipe's value, and the
resolved config is saved with the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConvzooError
from ..train.config import GROUPS, TrainConfig
from ._common import add_dataclass_flags, given_values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: the fast recipe on Fashion-MNIST)",
        description="Train a zoo model. With no arguments: the default model on "
        "Fashion-MNIST with the fast recipe.",
    )
    run = add_dataclass_flags(p, TrainConfig, groups=GROUPS)
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its last checkpoint",
    )
    run.add_argument(
        "--auto-resume",
        action="store_true",
        help="with --out DIR: resume DIR if it holds a checkpoint, else start there (the same "
        "command then survives torchrun --max-restarts)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..finetuning import RECORD
    from ..train.config import ConfigError

    overrides = given_values(args, TrainConfig)
    if args.resume and args.auto_resume:
        raise ConfigError("give either --resume RUN_DIR or --auto-resume --out RUN_DIR, not both")
    TrainConfig(**overrides).check_values()  # a usage error answers before torch is imported
    from ..train.run import resolve_config, train
    from ..train.rundir import RunFinished, resume_config

    if args.resume:
        if (Path(args.resume) / RECORD).exists():  # needs its head lr and freezing
            raise ConvzooError(
                f"{args.resume} is a fine-tuning run; resume it with "
                f"convzoo finetune --resume {args.resume}"
            )
        cfg = resume_config(args.resume, overrides)
        train(cfg, resume=args.resume)
    else:
        cfg = resolve_config(overrides)
        try:
            train(cfg, auto_resume=args.auto_resume)
        except RunFinished as e:  # the same command run again: nothing to do, not a failure
            print(e)
    return 0
