"""Training: :func:`fit`, the :class:`Trainer` loop, callbacks, recipes and run directories."""

from .callbacks import Checkpointer, ConsoleLogger, EarlyStopping, HistoryWriter
from .config import TrainConfig
from .fit import fit
from .history import History
from .recipes import BOOK_SETTINGS, RECIPES
from .run import RunResult, resolve_config, train
from .trainer import Callback, NonFiniteLossError, Trainer

__all__ = [
    "BOOK_SETTINGS",
    "RECIPES",
    "Callback",
    "Checkpointer",
    "ConsoleLogger",
    "EarlyStopping",
    "History",
    "HistoryWriter",
    "NonFiniteLossError",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "fit",
    "resolve_config",
    "train",
]
