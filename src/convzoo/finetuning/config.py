"""What fine-tuning adds to a training config (``convzoo finetune``'s own flags), without torch:
the command line parses and checks it before the network is loaded."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import FinetuneError
from ..train.config import setting

#: the file in a fine-tuning run directory that says how to resume it
RECORD = "finetune.json"


@dataclass
class FinetuneConfig:
    """What fine-tuning adds to :class:`TrainConfig` (flags of ``convzoo finetune``)."""

    source: str = setting(
        "",
        "RUN_DIR, RUN_DIR/model.safetensors or torchvision:ARCH",
        metavar="SOURCE",
    )
    weights: str | None = setting(
        None,
        "torchvision:ARCH weights: a .pth/.safetensors state dict (read with weights_only) "
        "or DEFAULT / IMAGENET1K_V1 (downloaded when online)",
        flag="--weights-file",
        metavar="PATH|NAME",
    )
    freeze: int = setting(0, "hold the first N stages fixed", metavar="N")
    freeze_until: str | None = setting(
        None, "hold every stage up to and including STAGE fixed (e.g. layer2)", metavar="STAGE"
    )
    unfreeze_at: int | None = setting(
        None, "train the frozen stages too from this epoch on (1-based)", metavar="EPOCH"
    )
    head_lr_mult: float = setting(
        10.0, "learning rate of the new classifier / the base rate (default 10)", metavar="X"
    )
    reset_head: bool = setting(
        False, "a new classifier even when the data has the source's classes"
    )
    strict: bool = setting(
        False, "refuse weights with any missing, unexpected or mis-shaped tensor"
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        if not self.source:
            raise FinetuneError("fine-tuning needs a SOURCE: a run directory or torchvision:ARCH")
        if self.freeze < 0:
            raise FinetuneError(f"--freeze must be >= 0, got {self.freeze}")
        if self.freeze and self.freeze_until:
            raise FinetuneError("give --freeze N or --freeze-until STAGE, not both")
        if self.unfreeze_at is not None:
            if not (self.freeze or self.freeze_until):
                raise FinetuneError("--unfreeze-at needs frozen stages (--freeze/--freeze-until)")
            if self.unfreeze_at < 2:
                raise FinetuneError(
                    f"--unfreeze-at must be an epoch >= 2 (1-based), got {self.unfreeze_at}"
                )
        if not 0 < self.head_lr_mult < math.inf:
            raise FinetuneError(f"--head-lr-mult must be > 0 and finite, got {self.head_lr_mult}")
