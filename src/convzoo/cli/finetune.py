"""``convzoo finetune``: start from a trained network, new head, small learning rate.

Every :class:`~convzoo.train.TrainConfig` field is a flag as in ``convzoo train`` (defaults from
the ``finetune`` recipe, the input size and normalization from the source); the fine-tuning
flags map one-to-one onto :class:`~convzoo.train.FinetuneConfig`.
"""

from __future__ import annotations

import argparse

from .train import add_config_flags, config_overrides

DESCRIPTION = """\
Fine-tune a trained network on a data set: the chapter's recipe (a new classifier with Xavier
init learning 10x faster, a small learning rate, few epochs, optionally frozen bottom stages).

SOURCE is a convzoo run directory (or its model.safetensors), or torchvision:ARCH with
--weights (a torchvision state-dict file, or DEFAULT to download torchvision's).

examples:
  convzoo finetune --from runs/pretrain --subset classes=5-9,shots=20 --freeze 1
  convzoo finetune --from torchvision:resnet18 --weights resnet18-f37072fd.pth --image-size 64
"""


#: config flags whose default differs from convzoo train's
HELPS = {
    "recipe": "finetune (default): small lr, few epochs, cosine; or fast, d2l, speedrun",
    "image_size": "resize images to this side in pixels (default: the source's input size)",
    "normalize": "normalize inputs as the source's were (its mean and std; default on when "
    "the source was trained so)",
    "lr": "base learning rate (the new head's is --head-lr-mult times it)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..models.tv import TORCHVISION_ARCHS

    p = sub.add_parser(
        "finetune",
        help="fine-tune a trained network (ours or torchvision's) on new data",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        default=None,
        help="RUN_DIR, RUN_DIR/model.safetensors or torchvision:ARCH (ARCH: "
        + ", ".join(TORCHVISION_ARCHS)
        + ")",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH|NAME",
        help="torchvision:ARCH weights: a .pth/.safetensors state dict (read with "
        "weights_only) or DEFAULT / IMAGENET1K_V1 (downloaded when online)",
    )
    frozen = p.add_mutually_exclusive_group()
    frozen.add_argument(
        "--freeze", type=int, default=0, metavar="N", help="hold the first N stages fixed"
    )
    frozen.add_argument(
        "--freeze-until",
        default=None,
        metavar="STAGE",
        help="hold every stage up to and including STAGE fixed (e.g. layer2)",
    )
    p.add_argument(
        "--unfreeze-at",
        type=int,
        default=None,
        metavar="EPOCH",
        help="train the frozen stages too from this epoch on (1-based)",
    )
    p.add_argument(
        "--head-lr-mult",
        type=float,
        default=10.0,
        metavar="X",
        help="learning rate of the new classifier / the base rate (default 10)",
    )
    p.add_argument(
        "--reset-head",
        action="store_true",
        help="a new classifier even when the data has the source's classes",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse weights with any missing, unexpected or mis-shaped tensor",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the fine-tuning run in RUN_DIR from its last checkpoint",
    )
    add_config_flags(p, skip=("model", "model_options"), helps=HELPS)
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..train.finetuning import FinetuneConfig, FinetuneError, resume_finetune, run_finetune

    overrides = config_overrides(args)
    if args.resume:
        given = [
            flag
            for flag, value in [
                ("--from", args.source),
                ("--weights", args.weights),
                ("--freeze", args.freeze),
                ("--freeze-until", args.freeze_until),
                ("--unfreeze-at", args.unfreeze_at),
                ("--head-lr-mult", args.head_lr_mult != 10.0),
                ("--reset-head", args.reset_head),
                ("--strict", args.strict),
            ]
            if value
        ]
        if given:
            raise FinetuneError(
                f"--resume continues {args.resume} as it was started; drop {', '.join(given)}"
            )
        resume_finetune(args.resume, overrides)
        return 0
    ft = FinetuneConfig(
        source=args.source or "",
        weights=args.weights,
        freeze=args.freeze,
        freeze_until=args.freeze_until,
        unfreeze_at=args.unfreeze_at,
        head_lr_mult=args.head_lr_mult,
        reset_head=args.reset_head,
        strict=args.strict,
    )
    run_finetune(ft, overrides)
    return 0
