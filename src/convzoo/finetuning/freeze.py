"""Freezing: the chapter's fine-tuning holds the bottom layers fixed and trains the rest.

``--freeze N`` / ``--freeze-until STAGE`` pick the bottom stages (:func:`frozen_stages`);
:class:`FreezeStages` holds them fixed until ``--unfreeze-at``; :func:`param_groups` gives the
new classifier its own, larger learning rate (``--head-lr-mult``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import FinetuneError
from ..train.trainer import Callback, Trainer


def frozen_stages(
    model: nn.Module, freeze: int = 0, freeze_until: str | None = None
) -> list[tuple[str, nn.Module]]:
    """The bottom stages ``--freeze N`` / ``--freeze-until STAGE`` hold fixed."""
    if not freeze and freeze_until is None:
        return []
    require_zoo(model, "stages", "freezing stages")
    stages = model.stages
    names = [n for n, _ in stages]
    label = getattr(model, "model_name", type(model).__name__)
    if freeze_until is not None:
        if freeze_until not in names:
            raise FinetuneError(
                f"{label} has no stage {freeze_until!r}; its stages are {', '.join(names)}"
            )
        freeze = names.index(freeze_until) + 1
    if not 0 <= freeze <= len(stages):
        raise FinetuneError(
            f"cannot freeze {freeze} stages: {label} has {len(stages)} stages ({', '.join(names)})"
        )
    return stages[:freeze]


class FreezeStages(Callback):
    """Holds ``modules`` fixed until epoch ``unfreeze_at`` (1-based; None: to the end).

    Frozen modules get ``requires_grad=False`` (no gradient is computed, and SGD/AdamW skip
    parameters whose gradient is None, weight decay and momentum included) and run in eval
    mode: batch norm normalizes with, and keeps, the source's running statistics (a batch of a
    few new images would otherwise overwrite statistics estimated on the whole pretraining
    set), dropout is off. The optimizer holds every parameter from the start, so unfreezing
    only flips ``requires_grad`` and a checkpoint's optimizer state fits at any epoch; the
    state is re-derived from the epoch at each epoch's start (after the loop's
    ``model.train()``), which is what makes a resumed run exact.
    """

    def __init__(self, modules: Sequence[nn.Module], unfreeze_at: int | None = None) -> None:
        self.modules = list(modules)
        self.unfreeze_at = unfreeze_at

    def frozen(self, epoch: int) -> bool:
        """Whether the modules are held fixed in 0-based ``epoch``."""
        return self.unfreeze_at is None or epoch + 1 < self.unfreeze_at

    def apply(self, epoch: int) -> None:
        frozen = self.frozen(epoch)
        for m in self.modules:
            m.requires_grad_(not frozen)
            if frozen:
                m.eval()

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.apply(trainer.epoch)


def param_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """Every parameter at ``lr`` except the classifier's, at ``lr * head_lr_mult``."""
    require_zoo(model, "get_classifier", "a learning rate of its own for the classifier")
    head = list(model.get_classifier().parameters())
    ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": body, "lr": lr, "name": "body"},
        {"params": head, "lr": lr * head_lr_mult, "name": "head"},
    ]


def require_zoo(model: nn.Module, attr: str, what: str) -> None:
    """Freezing stages and replacing the classifier need the zoo's interface (named
    ``stages``, ``get_classifier``/``reset_classifier``): say so in one line when a network
    defined in Python lacks it, rather than an AttributeError from deep inside."""
    if not hasattr(model, attr):
        raise FinetuneError(
            f"{what} needs a zoo model (convzoo.create_model): {type(model).__name__} has no "
            f"{attr}; train a network of your own with convzoo.fit, which needs neither"
        )
