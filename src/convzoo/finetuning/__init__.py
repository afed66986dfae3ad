"""Fine-tuning (the chapter's 微调): start from a trained network, give it a new head, train
it a little further with a small learning rate, optionally holding the bottom layers fixed.

- :mod:`.config`: :class:`FinetuneConfig`, what fine-tuning adds to a training config;
- :mod:`.sources`: where it starts, one of our runs or a torchvision network with its weights;
- :mod:`.adapt`: other input channels (RGB <-> gray) and the source's normalization;
- :mod:`.freeze`: which stages stay fixed, and the new head's larger learning rate;
- :mod:`.run`: the run itself (:func:`finetune`), an ordinary training run underneath.

Names are imported on first use (PEP 562): the command line reads the config without torch.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

#: public name -> the module of this package that defines it
_LAZY = {
    "RECORD": "config",
    "FinetuneConfig": "config",
    "FinetuneError": "config",
    **dict.fromkeys(("adapt_input_channels", "adapt_normalization"), "adapt"),
    **dict.fromkeys(("FreezeStages", "frozen_stages", "param_groups"), "freeze"),
    **dict.fromkeys(("finetune", "resume_finetune", "run_finetune"), "run"),
    **dict.fromkeys(("TORCHVISION", "Pretrained", "load_into", "load_source"), "sources"),
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
