"""convzoo: the classic CNNs of *Dive into Deep Learning* as fast, inspectable software."""

from .data import load_dataset
from .errors import ConvzooError
from .finetuning import finetune
from .models import BatchNorm, create_model, list_models
from .summary import summary
from .train import History, TrainConfig, Trainer, fit
from .trained import Evaluation, ModelMeta, Prediction, evaluate, load_model, predict

__version__ = "0.1.0"

__all__ = [
    "BatchNorm",
    "ConvzooError",
    "Evaluation",
    "History",
    "ModelMeta",
    "Prediction",
    "TrainConfig",
    "Trainer",
    "__version__",
    "create_model",
    "evaluate",
    "finetune",
    "fit",
    "list_models",
    "load_dataset",
    "load_model",
    "predict",
    "summary",
]
