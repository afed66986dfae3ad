"""Class activation maps: where in the image a layer's features raise one class's score.

Two maps from one forward and one backward pass (a batch holds one image per class asked for),
at a layer's output ``A`` (``N x C x h x w``) and the gradient ``G = d score / d A`` of the
class's logit:

- **Grad-CAM** (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391):
  ``ReLU(sum_k mean_ij(G_k) * A_k)``: one weight per channel, the gradient averaged over the map.
- **HiResCAM** (Draelos & Carin, 2020, https://arxiv.org/abs/2011.08891):
  ``ReLU(sum_k G_k * A_k)``: the gradient kept per position. When the rest of the network is
  linear in ``A`` (global pooling + a linear classifier) it sums exactly to the logit less the
  classifier's bias, so a position the classifier does not read gets zero. Grad-CAM's
  averaging spreads a channel's weight over positions the classifier never looks at: on a
  network whose classifier reads only the left half of its last map, Grad-CAM put 35% of its
  mass on the left and HiResCAM 100% (``tests/test_explain_attribution.py``). In the deletion
  and insertion games on Fashion-MNIST the two tie at speednet's last stage (deletion 0.249 vs
  0.239, insertion 0.432 vs 0.420; benchmarks/RESULTS.md, "explain: attribution"), so
  ``convzoo explain`` shows HiResCAM, the one that cannot point at what the classifier ignores.

Both maps are upsampled bilinearly to the input's size (a convex combination: still >= 0).

Own hooks, not a library: the method is the ~20 lines below. captum's ``LayerGradCam`` (0.9.0,
a 0.46 MB wheel, no new dependencies) gives the same Grad-CAM (largest difference 0 on 500
Fashion-MNIST images) and took 1.06x our time; it has no HiResCAM. pytorch-grad-cam
(``grad-cam`` 1.5.7) has both but requires OpenCV, SciPy, scikit-learn and ttach. captum
stays an optional extra (``dev``, ``bench``) that the tests and the benchmark compare with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..catalog import ATTRIBUTION_METHODS as METHODS  # ``--method``; the first: default
from ..errors import ConvzooError, UnknownNameError


def stage_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(stage name, module whose output is the stage's output)`` in forward order.

    A zoo model's stages are its own submodules. The torchvision wrappers return views
    (``nn.Sequential`` of their submodules, never called themselves): their stage output is
    the output of the view's last module.
    """
    own = {id(m) for m in model.modules()}
    out = []
    for name, stage in model.stages:
        module = stage if id(stage) in own else list(stage.children())[-1]
        out.append((name, module))
    return out


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The module named ``name``: a stage name (``b3``, ``layer4``) or a module path from
    ``convzoo summary`` (``features.b3.1``); unknown names list the stages."""
    stages = dict(stage_modules(model))
    if name in stages:
        return stages[name]
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    raise UnknownNameError(
        f"unknown layer {name!r}; stages of {getattr(model, 'model_name', type(model).__name__)}: "
        f"{', '.join(stages)} (or a layer path from `convzoo summary`)"
    )


@contextlib.contextmanager
def capture(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each module's output (of its last call) during the forward passes in the block.

    The network continues with a copy of the output, so that a later in-place operation
    (``ReLU(inplace=True)`` in speednet and torchvision's ResNet) cannot change the recorded
    tensor, and gradients with respect to it stay those of the value the layer computed.
    """
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                return None
            outputs[name] = output
            return output.clone()

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def cam_from(
    activation: torch.Tensor,
    gradient: torch.Tensor,
    *,
    method: str = METHODS[0],
    size: Sequence[int] | None = None,
) -> torch.Tensor:
    """``N x h x w`` map (``N x H x W`` with ``size``) from a layer's output and the gradient
    of a class score with respect to it (both ``N x C x h x w``); for a sequence model's layer
    (``N x C x l``) an ``N x l`` map (``N x L``) over time."""
    if activation.dim() not in (3, 4):
        raise ConvzooError(
            f"class activation maps need a layer with N x C x H x W (or N x C x L) output, this "
            f"one gives {tuple(activation.shape)}; choose a convolutional stage"
        )
    if method == "gradcam":
        weights = gradient.mean(dim=tuple(range(2, gradient.dim())), keepdim=True)
    elif method == "hirescam":
        weights = gradient
    else:
        raise UnknownNameError(
            f"unknown attribution method {method!r}; known: {', '.join(METHODS)}"
        )
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    if size is not None:
        mode = "bilinear" if cam.dim() == 4 else "linear"
        cam = F.interpolate(cam, size=tuple(size), mode=mode, align_corners=False)
    return cam[:, 0]


def class_activation_maps(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: nn.Module,
    method: str = METHODS[0],
) -> torch.Tensor:
    """``N x H x W`` maps of ``model`` (in eval mode) for class ``targets[n]`` of image
    ``x[n]`` at ``layer``'s output, upsampled to the input's ``H x W`` (``N x L`` for series)."""
    with capture({"layer": layer}) as out, torch.enable_grad():
        logits = model(x)
    activation = out["layer"]
    score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
    (gradient,) = torch.autograd.grad(score, activation)
    return cam_from(activation.detach(), gradient, method=method, size=x.shape[2:])
