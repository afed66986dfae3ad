"""Training: the :class:`Trainer` loop, callbacks, recipes, run directories and ``fit``
(``convzoo.fit``; the name ``convzoo.train.fit`` is its module).

Names are imported on first use (PEP 562), so that ``convzoo.train.config`` loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of this package that defines it
_LAZY = {
    **dict.fromkeys(
        ("Checkpointer", "ConsoleLogger", "EarlyStopping", "HistoryWriter"), "callbacks"
    ),
    "TrainConfig": "config",
    "History": "history",
    "BOOK_SETTINGS": "recipes",
    "RECIPES": "recipes",
    **dict.fromkeys(("RunResult", "resolve_config", "train"), "run"),
    **dict.fromkeys(("Callback", "NonFiniteLossError", "Trainer"), "trainer"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'convzoo.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
