"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import json
from typing import Any


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
            raise argparse.ArgumentTypeError(f"model option {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
