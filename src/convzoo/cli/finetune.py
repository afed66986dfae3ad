"""``convzoo finetune``: start from a trained network, new head, small learning rate.

Every :class:`~convzoo.train.TrainConfig` field is a flag as in ``convzoo train`` (defaults from
the ``finetune`` recipe, the input size and normalization from the source); the fine-tuning
flags are generated from :class:`~convzoo.finetuning.FinetuneConfig` the same way.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..train.config import TrainConfig
from ._common import add_dataclass_flags, flag_name, given_values

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
    from ..finetuning import FinetuneConfig
    from ..models.tv import TORCHVISION_ARCHS

    p = sub.add_parser(
        "finetune",
        help="fine-tune a trained network (ours or torchvision's) on new data",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    archs = ", ".join(TORCHVISION_ARCHS)
    source_help = {"source": f"RUN_DIR, RUN_DIR/model.safetensors or torchvision:ARCH ({archs})"}
    add_dataclass_flags(p, FinetuneConfig, helps=source_help)
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the fine-tuning run in RUN_DIR from its last checkpoint",
    )
    add_dataclass_flags(p, TrainConfig, skip=("model", "model_options"), helps=HELPS)
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..finetuning import FinetuneConfig, FinetuneError, resume_finetune, run_finetune

    overrides = given_values(args, TrainConfig)
    ft_values = given_values(args, FinetuneConfig)
    if args.resume:
        if ft_values:  # they set up a new fine-tuning; the run keeps its own
            fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
            flags = ", ".join(flag_name(fields[k]) for k in ft_values)
            raise FinetuneError(f"--resume continues {args.resume} as it was started; drop {flags}")
        resume_finetune(args.resume, overrides)
        return 0
    run_finetune(FinetuneConfig(**ft_values), overrides)
    return 0
