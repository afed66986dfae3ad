"""convzoo: the classic CNNs of *Dive into Deep Learning* as fast, inspectable software."""

from .data import load_dataset
from .errors import ConvzooError
from .finetuning import finetune
from .models import BatchNorm, create_model, list_models
from .summary import summary
from .train import History, TrainConfig, Trainer, fit

__version__ = "0.1.0"

__all__ = [
    "BatchNorm",
    "ConvzooError",
    "History",
    "TrainConfig",
    "Trainer",
    "__version__",
    "create_model",
    "finetune",
    "fit",
    "list_models",
    "load_dataset",
    "summary",
]
