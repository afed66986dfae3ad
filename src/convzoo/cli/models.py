"""``convzoo models`` and ``convzoo summary``."""

from __future__ import annotations

import argparse
import fnmatch

from ..catalog import MODELS, ZooRow
from ._common import deprecated_alias, parse_kwargs, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo with sizes, parameters and FLOPs")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*'")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer output shapes, parameters and FLOPs")
    p.add_argument("model", help="model name (see `convzoo models`)")
    p.add_argument(
        "--input-size",
        type=parse_size,
        default=None,
        help="C,H,W of one image, or C,L of one sequence for 1-D models (default: 1 channel at "
        "the model's default size)",
    )
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--depth", type=int, default=None, help="expand nested blocks this deep")
    p.add_argument(
        "--parts",
        type=int,
        default=None,
        metavar="N",
        help="instead of the layers: where an N-way model/pipeline split would cut (balanced "
        "by forward FLOPs) and each part's parameters, FLOPs and outgoing activation",
    )
    deprecated_alias(p, "--split", "--parts", type=int)
    p.add_argument(
        "--split-at",
        default=None,
        metavar="STAGE[,STAGE]",
        help="with --parts: cut before these stages instead (as train --split-at)",
    )
    p.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="model option, e.g. -o width_ratio=4 (repeatable)",
    )
    p.set_defaults(func=cmd_summary)


def _meta_model(name: str, **kwargs):
    import torch

    from ..models import create_model

    # Built on the meta device: shapes, parameter counts and FLOPs without memory or arithmetic,
    # so a summary of VGG-11 (129 M parameters) is instant.
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _short(doc: str, width: int = 64) -> str:
    first = doc.split(". ")[0].split(":")[0].split(";")[0].rstrip(".")
    return first if len(first) <= width else first[: width - 3] + "..."


def zoo_rows() -> tuple[ZooRow, ...]:
    """The table of ``convzoo models`` computed from the registry (torch, meta device):
    :data:`convzoo.catalog.MODELS` holds it, and a test keeps the two equal."""
    from ..models import get_model_entry, list_models
    from ..summary import summary

    rows = []
    for name in list_models():
        entry = get_model_entry(name)
        size = entry.default_input_size()
        s = summary(_meta_model(name), size, depth=0)
        rows.append(ZooRow(name, entry.family, size, s.total_params, s.flops, _short(entry.doc)))
    return tuple(rows)


def cmd_models(args: argparse.Namespace) -> int:
    # the catalog's copy: building 16 networks and importing torch took 10-12 s
    rows = [
        (
            r.name,
            r.family,
            "x".join(map(str, r.input_size)),
            f"{r.params:,}",
            f"{r.flops / 1e9:.4g}",
            r.description,
        )
        for r in MODELS
        if fnmatch.fnmatch(r.name, args.pattern)
    ]
    head = ("model", "family", "input", "params", "GFLOPs", "description")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    aligns = "<<>>><"
    for r in [head, *rows]:
        print("  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, aligns, widths)).rstrip())
    print(
        "\nGFLOPs: forward pass of one input at the size shown (multiply-add = 2 FLOPs); "
        "inputs are C x H x W images, or C x L sequences for 1-D models."
    )
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from ..errors import ParallelError
    from ..models import get_model_entry
    from ..parallel.split import plan_split
    from ..summary import summary

    entry = get_model_entry(args.model)
    size = args.input_size or entry.default_input_size()
    if len(size) != 1 + entry.spatial_dims:
        shape = "C,H,W" if entry.spatial_dims == 2 else "C,L"
        raise SystemExit(f"convzoo: error: --input-size of {args.model} needs {shape}, got {size}")
    model = _meta_model(
        args.model, num_classes=args.num_classes, in_channels=size[0], **parse_kwargs(args.option)
    )
    if args.parts is None and args.split_at:
        raise ParallelError("--split-at needs --parts N (the number of parts)")
    if args.parts is not None:
        if args.parts < 1:
            raise ParallelError(f"--parts needs a number of parts >= 1, got {args.parts}")
        print(plan_split(model, size, args.parts, args.split_at).table())
        return 0
    print(summary(model, size, depth=args.depth))
    return 0
