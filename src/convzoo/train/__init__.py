"""Training: the :class:`Trainer` loop, callbacks, recipes, run directories and ``fit``
(``convzoo.fit``; the name ``convzoo.train.fit`` is its module).

Names are imported on first use (PEP 562), so that ``convzoo.train.config`` loads without torch.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
