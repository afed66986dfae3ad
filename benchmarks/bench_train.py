"""Training speed, convzoo against the book's code: same model, batch, learning rate and batch
count, each side in a fresh subprocess.

Per case, examples/s by wall clock over the timed batches: the book's path
(``reference_d2l.py``, fp32; also its own batch-body metric), ours in fp32 and with
``--precision auto``, their ratios, and ``GFLOP/s`` of ours (forward FLOPs x 3);
``--compile MODELS`` adds ``torch.compile``. ``--whole``: whole processes, ``convzoo train
--recipe d2l`` against the d2l package's ``train_ch6`` (``book_runs.py``).

    convzoo bench --whole    # everything, ~25 min on CPU;  --smoke: a few batches
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    model: str
    image_size: int
    batch_size: int
    lr: float
    batches: int  #: timed batches per side (after WARMUP untimed ones)


#: the book's lr / batch size / resize (REFERENCE.md); batches sized for ~1 min per side on CPU
CASES = [
    Case("lenet", 28, 256, 0.9, 100),
    Case("lenet_bn", 28, 256, 1.0, 100),
    Case("resnet18", 96, 256, 0.05, 6),
    Case("alexnet", 224, 128, 0.01, 6),
]
WARMUP = 2


def run_convzoo(
    case: Case,
    *,
    precision: str,
    device: str,
    batches: int,
    warmup: int = WARMUP,
    compile: bool = False,
) -> dict[str, Any]:
    """convzoo's training path on Fashion-MNIST for ``batches`` timed batches (``compile``: the
    model under ``torch.compile``, as ``--compile`` trains it; compiling happens in the untimed
    warm-up batches)."""
    import torch

    import convzoo
    from convzoo.data import DeviceLoader, load_dataset
    from convzoo.runtime import choose_execution, resolve_device, tune_backends
    from convzoo.train import Trainer
    from convzoo.train.optim import xavier_init

    sys.path.insert(0, str(HERE))
    from reference_d2l import PeakMemory

    torch.manual_seed(0)
    dev = resolve_device(device)
    tune_backends(dev)
    with PeakMemory() as memory:
        train = load_dataset("fashion-mnist", split="train")
        model = convzoo.create_model(case.model)
        xavier_init(model)
        model.to(dev)
        shape = (1, case.image_size, case.image_size)
        execution = choose_execution(model, shape, dev, precision)
        prec, channels_last = execution.precision, execution.channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        # the book's inputs: pixels in [0, 1], no normalization, resized to the book's size
        loader = DeviceLoader(
            train,
            case.batch_size,
            shuffle=True,
            image_size=case.image_size,
            device=dev,
            channels_last=channels_last,
        )
        trainer = Trainer(
            model,
            loader,
            optimizer=torch.optim.SGD(model.parameters(), case.lr),
            device=dev,
            precision=prec,
        )
        if compile:
            trainer.net = torch.compile(trainer.net)
        model.train()
        batches_iter = iter(loader)
        for _ in range(warmup):
            trainer.train_step(next(batches_iter))
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        t = time.perf_counter()
        for _ in range(batches):
            trainer.train_step(next(batches_iter))
        trainer.check_finite()
        sync()
        seconds = time.perf_counter() - t
    flops = convzoo.summary(
        convzoo.create_model(case.model).to(dev), (1, case.image_size, case.image_size), depth=0
    ).flops
    rate = batches * case.batch_size / seconds
    return dict(
        examples_per_sec=rate,
        seconds=seconds,
        precision=prec.name,
        settings=execution.label,
        gflops_per_sec=3 * flops * rate / 1e9,
        device=str(dev),
        **memory.result(),
    )


def run_reference(case: Case, *, device: str, batches: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from reference_d2l import run_reference as ref

    return ref(
        case.model,
        batch_size=case.batch_size,
        lr=case.lr,
        resize=case.image_size if case.image_size != 28 else None,
        max_batches=batches,
        warmup=WARMUP,
        device=device,
        seed=0,
        verbose=False,
    )


def _child(args: argparse.Namespace) -> None:
    case = next(c for c in CASES if c.model == args.model)
    if args.side == "reference":
        out = run_reference(case, device=args.device, batches=args.batches)
    elif args.side == "compiled":
        out = run_convzoo(
            case, precision="auto", device=args.device, batches=args.batches, compile=True
        )
    else:
        out = run_convzoo(case, precision=args.side, device=args.device, batches=args.batches)
    print("RESULT " + json.dumps(out, default=str))


def measure(
    case: Case, side: str, device: str, batches: int, timeout: float | None = None
) -> dict[str, Any]:
    """One side of one case in a fresh interpreter (at most ``timeout`` seconds)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--model",
        case.model,
        "--batches",
        str(batches),
        "--device",
        device,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{side} {case.model} did not finish in {timeout:.0f} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{side} {case.model} failed:\n{proc.stderr[-3000:]}")


#: whole processes: (model, epochs) pairs, one seed each side
WHOLE = [("lenet", 3), ("lenet_bn", 3), ("lenet", 10), ("lenet_bn", 10)]


def whole_processes(json_path: str | None) -> list[dict[str, Any]]:
    """``convzoo train --recipe d2l`` against the published package's ``train_ch6``, each a
    whole process, fp32 both: seconds from start to exit, the ratio, and test accuracy."""
    sys.path.insert(0, str(HERE))
    from book_runs import timed
    from reference_d2l import prepare_fashion_mnist

    data_root = prepare_fashion_mnist().resolve()
    print("\nwhole processes, start to exit, fp32 both sides (seed 0): d2l 1.0.3's train_ch6 "
          "against convzoo train --recipe d2l", flush=True)  # fmt: skip
    rows = []
    for model, epochs in WHOLE:
        out = timed(model, epochs, [0], data_root, {"model": model, "epochs": epochs})
        book, ours = out["seconds"]["book-0"], out["seconds"]["ours-0"]
        print(
            f"{model:<9} {epochs:>2} epochs: book {book:6.1f} s (test acc {out['book'][0]:.4f}),"
            f" ours {ours:6.1f} s ({out['ours'][0]:.4f}): {book / ours:.2f}x",
            flush=True,
        )
        rows.append(out)
        if json_path:
            Path(json_path).with_suffix(".whole.json").write_text(json.dumps(rows, indent=2))
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(c.model for c in CASES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="2 timed batches per side (CI)")
    p.add_argument("--batches", type=int, default=None, help="timed batches (default per case)")
    p.add_argument("--json", default=None, help="write all figures here")
    p.add_argument(
        "--whole",
        action="store_true",
        help="also whole processes: --recipe d2l against the d2l package (LeNet, LeNet-BN)",
    )
    p.add_argument(
        "--compile",
        default="",
        metavar="MODELS",
        help="also time fast under torch.compile ('compiled') for these cases, e.g. resnet18",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.side = args.child
        _child(args)
        return []

    names = args.models.split(",")
    unknown = [n for n in names if n not in {c.model for c in CASES}]
    if unknown:
        raise SystemExit(f"bench: unknown case {unknown}; cases: {[c.model for c in CASES]}")
    from convzoo.runtime import describe_machine

    print(describe_machine(), flush=True)
    sides = ("reference", "fp32", "auto")
    print(
        f"examples/sec on {args.device}, wall clock, loading included; the book's side is fp32\n"
        f"{'model':<9} {'input':>5} {'batch':>5} {'book fp32 (own metric)':>22} "
        f"{'book fp32':>9} {'ours fp32':>24} {'ours auto':>24} {'fp32/fp32':>9} "
        f"{'auto/book':>9} {'GFLOP/s':>8}",
        flush=True,
    )
    rows = []
    for case in (c for c in CASES if c.model in names):
        batches = 2 if args.smoke else args.batches or case.batches
        r = {side: measure(case, side, args.device, batches) for side in sides}
        # optional: a compiler failure or hang costs this row only
        if case.model in args.compile.split(","):
            try:
                r["compiled"] = measure(case, "compiled", args.device, batches, timeout=300)
            except RuntimeError as e:
                print(f"{case.model}: compiled side failed: {str(e)[-500:]}", flush=True)
        ref, fp32, fast = r["reference"], r["fp32"], r["auto"]
        base = ref["examples_per_sec_wall"]
        ratio = fast["examples_per_sec"] / base
        ours = [f"{x['examples_per_sec']:,.0f} ({x['settings']})" for x in (fp32, fast)]
        print(
            f"{case.model:<9} {case.image_size:>5} {case.batch_size:>5} "
            f"{ref['examples_per_sec_book']:>22,.0f} {base:>9,.0f} {ours[0]:>24} "
            f"{ours[1]:>24} {fp32['examples_per_sec'] / base:>8.2f}x {ratio:>8.2f}x "
            f"{fast['gflops_per_sec']:>8.1f}",
            flush=True,
        )
        if "compiled" in r:
            c = r["compiled"]
            print(
                f"{'':<9} compiled ({c['settings']}): {c['examples_per_sec']:.0f} examples/sec"
                f" = {c['examples_per_sec'] / base:.2f}x book fp32, "
                f"{c['gflops_per_sec']:.1f} GFLOP/s",
                flush=True,
            )
        rows.append(dict(case=case.__dict__, batches=batches, ratio=ratio, **r))
        if args.json:  # after each case: a run stopped later keeps what it measured
            Path(args.json).write_text(json.dumps(rows, indent=2, default=str) + "\n")
    mem = [x for x in rows if x["case"]["model"] == "alexnet"]
    if mem:
        m = mem[0]
        print(
            f"\npeak memory of the alexnet@224 slice (PSS: shared pages split among processes): "
            f"reference {m['reference']['peak_pss_mb']:.0f} MB (process + 4 workers; "
            f"{m['reference']['peak_rss_mb']:.0f} MB RSS summed), "
            f"convzoo {m['auto']['peak_pss_mb']:.0f} MB"
        )
    if args.whole:
        whole_processes(args.json)
    return rows


if __name__ == "__main__":
    main()
