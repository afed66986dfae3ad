"""Which attribution should ``convzoo explain`` show, and should a library compute it?

    PYTHONPATH=src python benchmarks/explain_attribution.py RUN [--images 500] [--steps 16]

RUN is a trained run (``convzoo train --epochs 2``: speednet on Fashion-MNIST). On the first
``--images`` test images, for the predicted class:

- **Fidelity** by the deletion and insertion games (Petsiuk et al. 2018, RISE,
  https://arxiv.org/abs/1806.07421): pixels are set to 0 (Fashion-MNIST's black background),
  most attributed first, in ``--steps`` equal steps, and the class's probability is averaged
  over the steps (deletion: lower is better); insertion starts from a black image and restores
  the most attributed pixels first (higher is better). A random map is the floor.
  Methods: HiResCAM and Grad-CAM at every stage, and Integrated Gradients (pixels, from a
  black image), all ours.
- **Agreement and speed** against captum's ``LayerGradCam`` and ``IntegratedGradients`` (when
  captum is installed): largest difference of the maps, and the time of ours and theirs for
  the same batch in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from convzoo.data import apply_subset, load_dataset
from convzoo.data.loader import DeviceLoader
from convzoo.explain import class_activation_maps, resolve_layer, stage_modules
from convzoo.explain.explanation import denormalize
from convzoo.explain.integrated_gradients import STEPS, integrated_gradients
from convzoo.inference import load_trained


def to_input(pixels: torch.Tensor, meta: dict) -> torch.Tensor:
    """Pixels in [0, 1] (already at the model's size) -> the network's input."""
    if meta.get("mean") is None:
        return pixels
    shape = (1, -1, 1, 1)
    return (pixels - torch.tensor(meta["mean"]).view(shape)) / torch.tensor(meta["std"]).view(shape)


@torch.no_grad()
def games(model, pixels, meta, maps, classes, steps: int) -> tuple[float, float]:
    """(deletion AUC, insertion AUC) of ``maps`` (N x H x W), averaged over the images."""
    n, _, h, w = pixels.shape
    # ties (a zero region) are broken at random, not by pixel position
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(0)) * 1e-9
    order = (maps + noise * maps.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1)).flatten(1)
    order = order.argsort(dim=1, descending=True)
    deletion, insertion = [], []
    for s in range(steps + 1):
        k = round(s * h * w / steps)
        mask = torch.zeros(n, h * w).scatter_(1, order[:, :k], 1.0).view(n, 1, h, w)
        for kept, scores in ((1 - mask, deletion), (mask, insertion)):
            probs = model(to_input(pixels * kept, meta)).float().softmax(1)
            scores.append(probs.gather(1, classes.view(-1, 1)).mean().item())
    auc = lambda v: (sum(v) - (v[0] + v[-1]) / 2) / steps  # noqa: E731 (trapezoid on [0, 1])
    return auc(deletion), auc(insertion)


def best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def captum_comparison(model, x, classes, layer_name: str) -> None:
    try:
        from captum.attr import LayerAttribution, LayerGradCam
    except ImportError:
        print("captum not installed: no comparison (pip install captum)")
        return
    layer = resolve_layer(model, layer_name)
    size = x.shape[-2:]

    def ours():
        return class_activation_maps(model, x, classes, layer=layer, method="gradcam")

    def theirs():
        cam = LayerGradCam(model, layer).attribute(x, target=classes, relu_attributions=True)
        return LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")[:, 0]

    diff = (ours() - theirs()).abs().max().item()
    t_ours, t_theirs = best_time(ours), best_time(theirs)
    print(
        f"Grad-CAM at {layer_name} on {len(x)} images: largest difference from captum "
        f"{diff:.2e}; ours {t_ours * 1e3:.1f} ms, captum {t_theirs * 1e3:.1f} ms "
        f"(captum / ours = {t_theirs / t_ours:.2f}x)"
    )


def ig_comparison(model, x, classes, baseline) -> None:
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        return

    def ours():
        return integrated_gradients(model, x, classes, baseline=baseline)

    def theirs():
        ig = IntegratedGradients(model).attribute(
            x,
            baselines=baseline.expand_as(x),
            target=classes,
            n_steps=STEPS,
            method="riemann_middle",
            internal_batch_size=len(x),
        )
        return ig.sum(1).clamp_min(0).detach()

    diff = (ours() - theirs()).abs().max().item()
    t_ours, t_theirs = best_time(ours, 1), best_time(theirs, 1)
    print(
        f"Integrated Gradients ({STEPS} steps) on {len(x)} images: largest difference from "
        f"captum {diff:.2e}; ours {t_ours:.2f} s, captum {t_theirs:.2f} s "
        f"(captum / ours = {t_theirs / t_ours:.2f}x)"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a trained run directory")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, meta = load_trained(args.run)
    data = apply_subset(load_dataset(meta["dataset"], "test"), meta.get("subset"))
    data.images, data.labels = data.images[: args.images], data.labels[: args.images]
    loader = DeviceLoader(
        data, len(data), image_size=meta["image_size"], mean=meta["mean"], std=meta["std"]
    )
    x = next(iter(loader)).x
    pixels = torch.stack([denormalize(i, meta["mean"], meta["std"]) for i in x])
    with torch.no_grad():
        classes = model(x).argmax(1)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{meta['model']} on {len(x)} {meta['dataset']} test images, load average {load}")
    methods = {"random": torch.rand(pixels.shape[0], *pixels.shape[2:])}
    for name, module in stage_modules(model):
        for method in ("hirescam", "gradcam"):
            methods[f"{method} at {name}"] = class_activation_maps(
                model, x, classes, layer=module, method=method
            ).detach()
    baseline = to_input(torch.zeros(1, x.shape[1], 1, 1), meta)  # black
    methods[f"integrated gradients ({STEPS})"] = integrated_gradients(
        model, x, classes, baseline=baseline
    )
    rows = []
    print(f"{'attribution':<32} {'deletion (lower better)':>24} {'insertion (higher better)':>26}")
    for name, maps in methods.items():
        d, i = games(model, pixels, meta, maps, classes, args.steps)
        rows.append({"method": name, "deletion": d, "insertion": i})
        print(f"{name:<32} {d:>24.4f} {i:>26.4f}")
    captum_comparison(model, x, classes, stage_modules(model)[-1][0])
    ig_comparison(model, x, classes, baseline)
    return rows


if __name__ == "__main__":
    main()
