"""Fine-tuning (the chapter's 微调): start from a trained network, give it a new head, train
it a little further with a small learning rate, optionally holding the bottom layers fixed.

- :mod:`.sources`: where it starts, one of our runs or a torchvision network with its weights;
- :mod:`.adapt`: other input channels (RGB <-> gray) and the source's normalization;
- :mod:`.freeze`: which stages stay fixed, and the new head's larger learning rate;
- :mod:`.run`: the run itself (:func:`finetune`), an ordinary training run underneath.
"""

from ..errors import FinetuneError
from .adapt import adapt_input_channels, adapt_normalization
from .freeze import FreezeStages, frozen_stages, param_groups
from .run import RECORD, FinetuneConfig, finetune, resume_finetune, run_finetune
from .sources import TORCHVISION, Pretrained, load_into, load_source

__all__ = [
    "RECORD",
    "TORCHVISION",
    "FinetuneConfig",
    "FinetuneError",
    "FreezeStages",
    "Pretrained",
    "adapt_input_channels",
    "adapt_normalization",
    "finetune",
    "frozen_stages",
    "load_into",
    "load_source",
    "param_groups",
    "resume_finetune",
    "run_finetune",
]
