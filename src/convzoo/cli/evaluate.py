"""``convzoo evaluate`` and ``convzoo predict``: use a trained network."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix")
    p.add_argument("source", help="run directory or model.safetensors")
    p.add_argument("--dataset", default=None, help="data set (default: the one trained on)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--subset", default=None, help="subset spec (default: the one trained on)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument(
        "--out",
        default=None,
        help="confusion matrix PNG (default: next to the weights, confusion-<dataset>-<split>.png)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes of image files")
    p.add_argument("source", help="run directory, model.safetensors or an exported .onnx file")
    p.add_argument("images", nargs="+", help="image files (any size and mode)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data import apply_subset, load_dataset
    from ..inference import evaluate_model, load_trained, weights_path
    from ..viz import plot_confusion

    model, meta = load_trained(args.source)
    name = args.dataset or meta["dataset"]
    subset = args.subset if args.subset is not None else meta.get("subset")
    data = apply_subset(load_dataset(name, split=args.split, root=args.data_dir), subset)
    result = evaluate_model(model, meta, data, device=args.device, batch_size=args.batch_size)
    print(
        f"{meta['model']} on {name} {args.split}"
        + (f" ({subset})" if subset else "")
        + f": accuracy {result['acc']:.4f}, loss {result['loss']:.4f} "
        f"({result['count']:,} images)"
    )
    width = max(len(c) for c in data.classes)
    for cls, acc in result["per_class_acc"].items():
        print(f"  {cls:<{width}}  {acc:.4f}")
    safe = name.replace("/", "_").replace(":", "_")
    out = (
        Path(args.out)
        if args.out
        else (weights_path(args.source).parent / f"confusion-{safe}-{args.split}.png")
    )
    plot_confusion(
        result["confusion"],
        data.classes,
        out,
        title=f"{meta['model']} on {name} {args.split} (accuracy {result['acc']:.4f})",
    )
    print(f"confusion matrix: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..export import load_predictor
    from ..trained import predict

    model = load_predictor(args.source)
    results = predict(model, args.images, device=args.device).top(args.top_k)
    for path, top in zip(args.images, results):
        print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    return 0
