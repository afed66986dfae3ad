"""Where a GPU training step's time goes: the GPU's own kernel time against the wall clock.

    PYTHONPATH=src python3 benchmarks/gpu_profile.py [--device cuda]     # ~30 s on an H100

Prints, for convzoo's training step (``Trainer.train_step`` fed by the in-memory loader, bf16
autocast + channels_last as ``--recipe fast`` runs it):
- the start-up costs a ``convzoo train`` process pays before its first step: ``import torch``,
  the CUDA context, ``import convzoo``, loading Fashion-MNIST;
- per case (resnet18@96 at batch 256 and 1024, speednet width 64 at batch 512): wall time per
  step and the sum of the GPU kernels' time per step (``torch.profiler``). Kernel time well
  below the wall time means the GPU waits for Python to launch work (CPU-bound), and then
  examples/sec grows with the batch size at the same number of launches.
"""

from __future__ import annotations

import argparse
import time

T0 = time.perf_counter()
import torch  # noqa: E402

T_IMPORT = time.perf_counter() - T0


def step_profile(
    name: str, width_kw: dict, image_size: int, batch: int, device, steps: int, data
) -> None:
    import convzoo
    from convzoo.data import DeviceLoader
    from convzoo.runtime import resolve_precision, tune_backends
    from convzoo.train import Trainer

    tune_backends(device)
    prec = resolve_precision("auto", device)
    model = convzoo.create_model(name, **width_kw).to(device)
    model = model.to(memory_format=torch.channels_last)
    loader = DeviceLoader(
        data, batch, shuffle=True, image_size=image_size, device=device, channels_last=True
    )
    trainer = Trainer(
        model,
        loader,
        optimizer=torch.optim.SGD(model.parameters(), 0.05, momentum=0.9),
        device=device,
        precision=prec,
    )
    model.train()
    it = iter(loader)
    for _ in range(min(5, steps)):  # warm-up: cuDNN autotuning, allocator
        trainer.train_step(next(it))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    steps = min(steps, len(loader) // 2 - 5)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(it))
    sync()
    wall = (time.perf_counter() - t) / steps
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    it = iter(loader)
    with profile(activities=acts) as prof:
        for _ in range(min(10, steps)):
            trainer.train_step(next(it))
        sync()
    n = min(10, steps)
    # kernels are the events on the CUDA device; the CPU ops that launched them also carry
    # their kernels' time, so only device events are summed
    kernels = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    gpu_us = sum(e.self_device_time_total for e in kernels) / n if kernels else float("nan")
    count = sum(e.count for e in kernels) / n if kernels else float("nan")
    print(
        f"{name:<9} {image_size:>3}px batch {batch:>4}: wall {wall * 1e3:6.2f} ms/step "
        f"({batch / wall:,.0f} examples/sec), GPU kernels {gpu_us / 1e3:6.2f} ms/step "
        f"({count:.0f} kernels/step, GPU busy {gpu_us / 1e6 / wall:.0%})",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=30, help="timed steps per case")
    args = p.parse_args()
    t = time.perf_counter()
    device = torch.device(args.device)
    torch.zeros(1, device=device)
    t_ctx = time.perf_counter() - t
    t = time.perf_counter()
    import convzoo  # noqa: F401

    t_cz = time.perf_counter() - t
    from convzoo.data import load_dataset

    t = time.perf_counter()
    train = load_dataset("fashion-mnist", split="train")
    load_dataset("fashion-mnist", split="test")
    t_data = time.perf_counter() - t
    print(
        f"start-up: import torch {T_IMPORT:.2f} s, {args.device} context {t_ctx:.2f} s, "
        f"import convzoo {t_cz:.2f} s, Fashion-MNIST (cached) {t_data:.2f} s",
        flush=True,
    )
    step_profile("resnet18", {}, 96, 256, device, args.steps, train)
    step_profile("resnet18", {}, 96, 1024, device, args.steps, train)
    step_profile("speednet", {"width": 64}, 28, 512, device, args.steps, train)


if __name__ == "__main__":
    main()
