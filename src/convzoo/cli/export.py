"""``convzoo export``: a trained network as ONNX, torch.export (.pt2) or TorchScript."""

from __future__ import annotations

import argparse

from ..catalog import EXPORT_FORMATS, WEIGHTS
from ._common import add_out_dir, out_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's network as ONNX / torch.export / TorchScript, with a model card",
        description="Export a trained network, check the file's outputs against PyTorch, and "
        "describe it in the run's model card (README.md). See docs/export.md.",
    )
    p.add_argument("source", help="run directory or its .safetensors weights")
    p.add_argument("--format", default="onnx", choices=EXPORT_FORMATS, help="default: onnx")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    p.add_argument(
        "--with-preprocess",
        action="store_true",
        help="the graph takes uint8 N x C x H x W pixels at the input size and scales and "
        "normalizes them itself",
    )
    p.add_argument(
        "--weights",
        default="best",
        choices=WEIGHTS,
        help="a run's best.safetensors (the epoch chosen on validation data; a run trained "
        "without a validation split has only model.safetensors: then that) or "
        "model.safetensors (the last epoch); default: best",
    )
    add_out_dir(p, "the exported file, named after the weights (default: the run directory)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model
    from ..export.card import card_path

    result = export_model(
        args.source,
        args.format,
        out=out_dir(args.out) if args.out else None,
        dynamic_batch=args.dynamic_batch,
        with_preprocess=args.with_preprocess,
        weights=args.weights,
    )
    spec = result.input
    shape = " x ".join(str(s) for s in spec["shape"])
    size = result.path.stat().st_size / 1e6
    print(
        f"exported {result.path} ({result.description}, {size:.1f} MB): input "
        f"{spec['name']} {spec['dtype']} {shape}"
    )
    if result.max_abs_diff is not None:
        batches = " and ".join(map(str, result.checked_batches))
        print(
            f"checked against PyTorch on random inputs (batch {batches}): max |difference| "
            f"of the logits {result.max_abs_diff:.1e}"
        )
    for note in result.notes:
        print(note)
    print(f"model card: {card_path(result.run_dir)}")
    return 0
