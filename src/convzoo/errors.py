"""User-facing errors.

Every mistake a user can make (a wrong name, a missing file, a bad value) raises a subclass of
:class:`ConvzooError` with a one-line message that names the value and says what to do. The CLI
prints that line and exits non-zero without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class ConvzooError(Exception):
    """An error caused by the user's input, reported as one line."""

    exit_code = 2


class UnknownNameError(ConvzooError, KeyError):
    """A model, data set, recipe or strategy name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputSizeError(ConvzooError, ValueError):
    """An input that does not fit a model (too small, wrong channel count, wrong rank)."""


class DataError(ConvzooError):
    """Data that is missing, corrupt or inconsistent."""


class DataNotFoundError(DataError):
    """A data set in none of the places searched and not downloaded. ``searched`` lists those
    places and ``reason`` says why there was no download, so that ``convzoo data fetch`` can go on
    to its next way of getting it and say what it tried."""

    def __init__(self, message: str, *, searched: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.searched = searched
        self.reason = reason


class CheckpointError(ConvzooError):
    """A checkpoint or weights file that is missing, truncated, unsafe or for another model."""


class StorageError(ConvzooError):
    """A file that cannot be written: the disk is full, the place is read-only or not a
    folder. The previous version of the file is intact (see :func:`convzoo.io.atomic_path`)."""

    exit_code = 74  # EX_IOERR of sysexits.h


class RunInUseError(ConvzooError):
    """A run directory another live process is writing (its lock is held)."""


class Interrupted(ConvzooError):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM, after keeping a checkpoint; the exit
    status is the shell's for the signal: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class FinetuneError(ConvzooError, ValueError):
    """A fine-tuning option that cannot work (more frozen stages than the model has, a source
    that cannot be adapted to the data's channels, ...)."""


class TrainingError(ConvzooError):
    """Training cannot go on (for example a non-finite loss)."""

    exit_code = 3


class ParallelError(ConvzooError):
    """A multi-device or multi-process setup that cannot work here (no GPU for a GPU strategy,
    a launch without torchrun, a checkpoint that another world size cannot resume exactly)."""
