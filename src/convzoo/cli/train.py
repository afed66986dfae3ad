"""``convzoo train``, ``convzoo evaluate``, ``convzoo predict``.

Every :class:`~convzoo.train.TrainConfig` field is a flag (``batch_size`` -> ``--batch-size``);
flags not given take the recipe's value, and the resolved config is saved with the run.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import ConvzooError
from ..train.config import TrainConfig
from ._common import parse_kwargs

HELP = {
    "model": "model name (default: the recipe's; `convzoo models` lists them)",
    "dataset": "fashion-mnist (default), mnist, cifar10 or folder:PATH",
    "data_dir": "where data sets are kept (default $CONVZOO_DATA or ~/.cache/convzoo)",
    "subset": "class / few-shot subset, e.g. classes=5-9,shots=50,seed=1 (see README)",
    "recipe": "fast (default): measured modern settings; d2l: the book's train_ch6 exactly; "
    "speedrun: time to accuracy; finetune: convzoo finetune's",
    "epochs": "epochs to train",
    "batch_size": "examples per batch (per process)",
    "lr": "peak learning rate",
    "optimizer": "sgd | nesterov | adamw",
    "momentum": "SGD momentum",
    "weight_decay": "L2 weight decay",
    "schedule": "constant | onecycle (linear warm-up, linear decay) | cosine",
    "warmup": "fraction of the steps spent warming up the lr",
    "label_smoothing": "label smoothing of the cross-entropy",
    "grad_clip": "clip the global gradient norm to this value",
    "init": "default (PyTorch's) | xavier (the book's)",
    "augment": "augmentation spec, e.g. hflip,crop:4 ('' for none; see README)",
    "image_size": "resize images to this side in pixels (default: the model's input size)",
    "normalize": "normalize inputs with the training set's mean and std",
    "drop_last": "drop the last incomplete training batch",
    "tta": "evaluate on each test image and its mirror image",
    "device": "auto | cpu | cuda | cuda:N",
    "precision": "auto | fp32 | bf16 | fp16",
    "channels_last": "channels-last memory format (default: with bf16/fp16)",
    "compile": "torch.compile the model",
    "seed": "random seed (initial weights, data order, augmentation)",
    "strategy": "single | scratch (the chapter's own data parallelism) | dp | ddp",
    "devices": "device list for --strategy scratch, e.g. cpu,cpu or cuda:0,cuda:1",
    "sync_bn": "synchronise batch-norm statistics across processes (ddp)",
    "patience": "stop after this many epochs without a better test accuracy",
    "ckpt_every": "also save a checkpoint every N optimizer steps",
    "out": "run directory (default runs/<time>-<model>)",
    "tensorboard": "also write TensorBoard logs to RUN_DIR/tensorboard",
    "eval_batch_size": "examples per evaluation batch",
}


def _flag_type(annotation: str):
    if "bool" in annotation:
        return None
    if "dict" in annotation:
        return "dict"
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def add_config_flags(
    p: argparse.ArgumentParser, skip: tuple[str, ...] = (), helps: dict[str, str] | None = None
) -> None:
    """One flag per config field; unset flags stay absent from the namespace. ``helps``
    replaces the help of some fields (another sub-command's defaults)."""
    helps = {**HELP, **(helps or {})}
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _flag_type(str(f.type))
        if kind == "dict":
            p.add_argument(
                "-o",
                "--option",
                dest="model_options",
                action="append",
                metavar="KEY=VALUE",
                default=argparse.SUPPRESS,
                help="model option, e.g. -o width_ratio=4 (repeatable)",
            )
        elif kind is None:
            p.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=helps.get(f.name),
            )
        else:
            p.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=f.name.upper(),
                help=helps.get(f.name),
            )


def config_overrides(args: argparse.Namespace) -> dict:
    names = set(TrainConfig.field_names())
    given = {k: v for k, v in vars(args).items() if k in names}
    if "model_options" in given:
        given["model_options"] = parse_kwargs(given["model_options"])
    return given


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: the fast recipe on Fashion-MNIST)",
        description="Train a zoo model. With no arguments: the default model on "
        "Fashion-MNIST with the fast recipe.",
    )
    add_config_flags(p)
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its last checkpoint",
    )
    p.add_argument(
        "--auto-resume",
        action="store_true",
        help="with --out DIR: resume DIR if it holds a checkpoint, else start there (the same "
        "command then survives torchrun --max-restarts)",
    )
    p.set_defaults(func=cmd_train)

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
    p.add_argument("source", help="run directory or model.safetensors")
    p.add_argument("images", nargs="+", help="image files (any size and mode)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.config import ConfigError
    from ..train.run import resolve_config, resume_config, train

    overrides = config_overrides(args)
    if args.resume and args.auto_resume:
        raise ConfigError("give either --resume RUN_DIR or --auto-resume --out RUN_DIR, not both")
    if args.resume:
        if (Path(args.resume) / "finetune.json").exists():  # needs its head lr and freezing
            raise ConvzooError(
                f"{args.resume} is a fine-tuning run; resume it with "
                f"convzoo finetune --resume {args.resume}"
            )
        cfg = resume_config(args.resume, overrides)
        train(cfg, resume=args.resume)
    else:
        train(resolve_config(overrides), auto_resume=args.auto_resume)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data import apply_subset, load_dataset
    from ..train.inference import evaluate_model, load_trained, weights_path
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
    from ..train.inference import load_trained, predict_images

    model, meta = load_trained(args.source)
    results = predict_images(model, meta, args.images, top_k=args.top_k, device=args.device)
    for path, top in zip(args.images, results):
        print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    return 0
