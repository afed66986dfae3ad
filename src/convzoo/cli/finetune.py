"""``convzoo finetune``: start from a trained network, new head, small learning rate.

Every :class:`~convzoo.train.TrainConfig` field is a flag as in ``convzoo train`` (defaults from
the ``finetune`` recipe, the input size and normalization from the source); the fine-tuning
flags are generated from :class:`~convzoo.finetuning.FinetuneConfig` the same way.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..catalog import TORCHVISION_ARCHS
from ..finetuning.config import FinetuneConfig
from ..train.config import GROUPS, TrainConfig
from ._common import add_dataclass_flags, deprecated_alias, flag_name, given_values

DESCRIPTION = """\
Fine-tune a trained network on a data set: the chapter's recipe (a new classifier with Xavier
init learning 10x faster, a small learning rate, few epochs, optionally frozen bottom stages).

SOURCE is a convzoo run directory (or its model.safetensors), or torchvision:ARCH with
--weights-file (a torchvision state-dict file, or DEFAULT to download torchvision's).

examples:
  convzoo finetune runs/pretrain --subset classes=5-9,shots=20 --freeze 1
  convzoo finetune torchvision:resnet18 --weights-file resnet18-f37072fd.pth --image-size 64
  convzoo finetune --resume runs/finetuned
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
    p = sub.add_parser(
        "finetune",
        help="fine-tune a trained network (ours or torchvision's) on new data",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    archs = ", ".join(TORCHVISION_ARCHS)
    p.add_argument(
        "source",
        nargs="?",
        default=argparse.SUPPRESS,
        metavar="SOURCE",
        help=f"RUN_DIR, RUN_DIR/model.safetensors or torchvision:ARCH ({archs})",
    )
    deprecated_alias(p, "--from", "SOURCE (positional)", dest="source", metavar="SOURCE")
    ft = p.add_argument_group("fine-tuning")
    add_dataclass_flags(ft, FinetuneConfig, skip=("source",))
    deprecated_alias(ft, "--weights", "--weights-file", dest="weights")
    ft.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the fine-tuning run in RUN_DIR from its last checkpoint",
    )
    groups = {k: v for k, v in GROUPS.items() if k != "model"}
    add_dataclass_flags(p, TrainConfig, skip=("model", "model_options"), helps=HELPS, groups=groups)
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..finetuning import FinetuneError

    overrides = given_values(args, TrainConfig)
    ft_values = given_values(args, FinetuneConfig)
    TrainConfig(**overrides).check_values()  # before torch is imported
    if args.resume:
        if ft_values:  # they set up a new fine-tuning; the run keeps its own
            fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
            flags = ", ".join(
                "SOURCE" if k == "source" else flag_name(fields[k]) for k in ft_values
            )
            raise FinetuneError(f"--resume continues {args.resume} as it was started; drop {flags}")
        from ..finetuning import resume_finetune

        resume_finetune(args.resume, overrides)
        return 0
    config = FinetuneConfig(**ft_values)
    config.validate()
    from ..finetuning import run_finetune

    run_finetune(config, overrides)
    return 0
