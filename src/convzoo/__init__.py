"""convzoo: the classic CNNs of *Dive into Deep Learning* as fast, inspectable software.

The public names are imported on first use (PEP 562): ``import convzoo`` and the command line's
argument checks run without torch, which takes 1-3 s to import.
"""

from __future__ import annotations

from .errors import ConvzooError as ConvzooError
from .lazy import lazy_getattr
from .summary import summary as summary  # torch-free until called; the name is the function's

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "load_dataset": "data",
    "finetune": "finetuning",
    "BatchNorm": "models",
    "create_model": "models",
    "list_models": "models",
    "History": "train.history",
    "TrainConfig": "train.config",
    "Trainer": "train.trainer",
    "fit": "train.fit",
    **dict.fromkeys(
        ("Evaluation", "ModelMeta", "Prediction", "evaluate", "load_model", "predict"), "trained"
    ),
}

__all__ = ["ConvzooError", "__version__", "summary", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
