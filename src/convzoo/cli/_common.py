"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConvzooError

#: suffixes of the files an ``--out`` used to name, before it was always a folder
_FILE_SUFFIXES = (".png", ".onnx", ".pt2", ".pt", ".html")


def parse_size(text: str) -> tuple[int, ...]:
    """``"1,224,224"`` or ``"1x224x224"`` -> ``(1, 224, 224)``; ``"224"`` -> ``(224,)``."""
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1,224,224") from None
    if not size or any(s < 1 for s in size):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1,224,224")
    return size


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["width_ratio=4", "stem=small"]`` -> ``{"width_ratio": 4, "stem": "small"}``.

    Values are read as JSON where they parse (numbers, lists, true/false), else as strings.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConvzooError(f"model option {item!r} is not KEY=VALUE (e.g. -o width=48)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _flag_type(annotation: str) -> Any:
    if "bool" in annotation:
        return None
    if "dict" in annotation:
        return "dict"
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def field_help(f: dataclasses.Field) -> str | None:
    """A config field's help text, with its choices appended when it has a list of them."""
    text = f.metadata.get("help")
    choices = f.metadata.get("choices")
    if text and choices:
        text = f"{text}: {' | '.join(choices)}"
    return text


def flag_name(f: dataclasses.Field) -> str:
    """The command-line flag of a config field: ``batch_size`` -> ``--batch-size``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_out_dir(p: argparse.ArgumentParser, what: str) -> None:
    """``--out DIR``: every command writes into a folder and names its files itself."""
    p.add_argument("--out", default=None, metavar="DIR", help=f"folder for {what}")


def out_dir(value: str | None, default: str | Path = ".") -> Path:
    """The folder ``--out`` names, or ``default`` (the writers make it, with the file)."""
    path = Path(value) if value else Path(default)
    if path.is_file() or (value and path.suffix.lower() in _FILE_SUFFIXES):
        raise ConvzooError(
            f"--out {value} names a file; --out is the folder to write in (the command names "
            "the file)"
        )
    return path


class _Deprecated(argparse.Action):
    """An old spelling kept for one release: it sets the new flag's value and says so."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"convzoo: warning: {option_string} is now {self.new} (the old spelling goes in the "
            "next release; CHANGELOG.md)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def deprecated_alias(
    p: argparse.ArgumentParser, old: str, new: str, dest: str | None = None, **kwargs: Any
) -> None:
    """Accept ``old`` as ``new`` (hidden from ``--help``), with a one-line warning."""
    dest = dest or new.lstrip("-").replace("-", "_")
    hidden = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}  # absent unless given
    p.add_argument(old, dest=dest, action=_Deprecated, new=new, **hidden, **kwargs)


def add_dataclass_flags(
    p: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    helps: dict[str, str] | None = None,
    groups: dict[str, str] | None = None,
) -> argparse.ArgumentParser | argparse._ArgumentGroup:
    """One flag per field of the dataclass ``cls`` (``batch_size`` -> ``--batch-size``), its
    help from the field's metadata; flags not given stay absent from the namespace, so that
    only what the user set overrides the recipe. ``helps`` replaces some fields' help (another
    sub-command's defaults); ``groups`` maps the field that opens a ``--help`` section to its
    title."""
    helps, groups = helps or {}, groups or {}
    parser = p
    for f in dataclasses.fields(cls):
        if f.name in groups:
            p = parser.add_argument_group(groups[f.name])  # type: ignore[assignment]
        if f.name in skip:
            continue
        flag = flag_name(f)
        metavar = f.metadata.get("metavar") or f.name.upper()
        kind = _flag_type(str(f.type))
        text = helps.get(f.name) or field_help(f)
        if kind == "dict":
            p.add_argument(
                "-o",
                "--option",
                dest=f.name,
                action="append",
                metavar="KEY=VALUE",
                default=argparse.SUPPRESS,
                help=f"{text} (repeatable)",
            )
        elif kind is None:
            p.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
        else:
            p.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=text,
            )
    return p  # the last section, for the caller's own flags


def given_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` the user gave on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "model_options" in given:
        given["model_options"] = parse_kwargs(given["model_options"])
    return given
