"""The ``convzoo`` command line. It only wires: each sub-command lives in its own module with a
``register(subparsers)`` that adds its parser and sets ``func(args) -> int``.

User errors (:class:`~convzoo.errors.ConvzooError`) print one line and exit non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from ..errors import ConvzooError, Interrupted
from ._allocator import keep_freed_memory

#: sub-command modules, in the order ``convzoo --help`` lists them
COMMAND_MODULES = (
    "models",
    "data",
    "augment",
    "train",
    "evaluate",
    "lr_find",
    "finetune",
    "explain",
    "export",
    "reproduce",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="convzoo",
        description="The classic CNNs of Dive into Deep Learning: inspect, train, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"convzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # images over PIL's pixel limit are refused in one line (data.image_file.too_many_pixels);
    # PIL's own DecompressionBombWarning, several lines, would only repeat it
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except Interrupted as e:
        print(f"convzoo: {e}", file=sys.stderr)
        return e.exit_code
    except ConvzooError as e:
        print(f"convzoo: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("convzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `convzoo models | head`
        return 0
