"""Attribution maps (``convzoo.explain.cam``, ``.integrated_gradients``): shape, sign,
faithfulness, sanity checks, agreement with captum."""

import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.explain import METHODS, class_activation_maps, resolve_layer, stage_modules
from convzoo.explain.integrated_gradients import integrated_gradients
from convzoo.models import ZooModel
from helpers import toy_pair


class LeftHalfNet(ZooModel):
    """Two conv stages (padded: 16 x 16 maps), then a classifier that pools only the left half
    of the last map: the right half of the image cannot change any score."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__(num_classes=num_classes, in_channels=1)
        self.features = nn.Sequential()
        self.features.add_module("b1", nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()))
        self.features.add_module("b2", nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[..., : x.shape[-1] // 2])


def left_share(maps: torch.Tensor) -> torch.Tensor:
    """Per map, the share of its mass on the left half."""
    w = maps.shape[-1]
    return maps[..., : w // 2].sum((1, 2)) / maps.sum((1, 2)).clamp_min(1e-12)


#: the layer maps, and Integrated Gradients (pixels: no layer)
ALL = (*METHODS, "ig")


def maps_of(model, x, method, layer="b2", targets=None):
    model.eval()
    if targets is None:
        targets = model(x).argmax(1)
    if method == "ig":
        return integrated_gradients(model, x, targets, baseline=torch.zeros(1))
    return class_activation_maps(
        model, x, targets, layer=resolve_layer(model, layer), method=method
    )


def test_left_half_network_hirescam_puts_its_mass_on_the_left_and_gradcam_does_not():
    model = LeftHalfNet()
    x = torch.rand(32, 1, 16, 16)
    hires = maps_of(model, x, "hirescam")
    grad = left_share(maps_of(model, x, "gradcam"))
    # the right half's gradient is exactly 0: HiResCAM's map there too
    assert hires[..., 8:].max() == 0 and hires[..., :8].sum((1, 2)).min() > 0
    # Grad-CAM spreads each channel's mean gradient over the whole map (Draelos & Carin 2020)
    assert grad.mean() < 0.7, grad  # 0.35 here


@pytest.fixture(scope="module")
def trained_speednet():
    """speednet trained for 3 epochs on the toy bands (class c lights up band c): 2 s."""
    torch.manual_seed(0)
    train, test = toy_pair(512, 64, size=16)
    model = convzoo.create_model("speednet", num_classes=4, width=8)
    convzoo.fit(
        model, (train, test), epochs=3, batch_size=32, image_size=16, device="cpu", verbose=False
    )
    return model.eval(), test


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("layer", ["b1", "b2"])
def test_maps_have_the_input_size_are_non_negative_and_not_constant(
    trained_speednet, method, layer
):
    model, test = trained_speednet
    x = test.images[:8].float().div(255)
    maps = maps_of(model, x, method, layer=layer)
    assert maps.shape == (8, 16, 16)
    assert (maps >= 0).all()
    flat = maps.flatten(1)
    assert (flat.max(1).values > flat.min(1).values).all()


@pytest.mark.parametrize("method", ALL)
def test_maps_follow_the_evidence_of_a_trained_network(trained_speednet, method):
    model, test = trained_speednet
    x = test.images[:32].float().div(255)
    y = test.labels[:32]
    assert (model(x).argmax(1) == y).float().mean() > 0.9  # it learned the bands
    maps = maps_of(model, x, method, targets=y)
    band = torch.stack([maps[i, 4 * c : 4 * c + 4].sum() for i, c in enumerate(y.tolist())])
    share = band / maps.sum((1, 2))
    assert share.mean() > 0.5, share  # a band is 1/4 of the image


@pytest.mark.parametrize("method", ALL)
def test_reinitialised_weights_change_the_map(trained_speednet, method):
    """Adebayo et al. 2018 ("Sanity checks for saliency maps"): a map that survives
    randomising the weights shows the image, not what the network learned."""
    model, test = trained_speednet
    x = test.images[:16].float().div(255)
    y = test.labels[:16]
    trained = maps_of(model, x, method, targets=y)
    random = convzoo.create_model("speednet", num_classes=4, width=8)
    randomized = maps_of(random, x, method, targets=y)
    a = trained.flatten(1) / trained.flatten(1).norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = randomized.flatten(1) / randomized.flatten(1).norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosine = (a * b).sum(1)
    assert cosine.mean() < 0.8, cosine


def test_gradcam_equals_captums_layer_gradcam():
    captum = pytest.importorskip("captum.attr", reason="captum not installed (pip install captum)")
    model = convzoo.create_model("resnet18", num_classes=4, width=8).eval()
    x = torch.rand(3, 1, 32, 32)
    y = torch.tensor([0, 2, 3])
    layer = resolve_layer(model, "b4")
    ours = class_activation_maps(model, x, y, layer=layer, method="gradcam")
    theirs = captum.LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=True)
    theirs = captum.LayerAttribution.interpolate(theirs, (32, 32), interpolate_mode="bilinear")
    torch.testing.assert_close(ours, theirs[:, 0], atol=1e-6, rtol=1e-5)


def test_integrated_gradients_equal_captums():
    captum = pytest.importorskip("captum.attr", reason="captum not installed (pip install captum)")
    model = convzoo.create_model("resnet18", num_classes=4, width=8).eval()
    x = torch.rand(3, 1, 32, 32)
    y = torch.tensor([0, 2, 3])
    baseline = torch.full((1, 1, 1, 1), -0.5)
    ours = integrated_gradients(model, x, y, baseline=baseline, steps=8)
    theirs = captum.IntegratedGradients(model).attribute(
        x, baselines=baseline.expand_as(x), target=y, n_steps=8, method="riemann_middle"
    )
    torch.testing.assert_close(ours, theirs.sum(1).clamp_min(0), atol=1e-6, rtol=1e-5)


def test_in_place_relu_after_the_layer_does_not_change_the_recorded_output():
    # speednet's stages end in ReLU(inplace=True); torchvision's ResNet adds in place
    model = convzoo.create_model("tv_resnet18", num_classes=4, in_channels=1).eval()
    x = torch.rand(2, 1, 64, 64)
    y = torch.tensor([1, 2])
    layer = resolve_layer(model, "layer3")
    maps = class_activation_maps(model, x, y, layer=layer, method="hirescam")
    # reference without hooks: run the stages by hand and differentiate the kept output
    h = x
    for name, stage in model.stages:
        h = stage(h)
        if name == "layer3":
            kept = h
            h = h.clone()
    logits = model.forward_head(h)
    (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), kept)
    ref = torch.relu((g * kept).sum(1, keepdim=True))
    ref = torch.nn.functional.interpolate(ref, size=(64, 64), mode="bilinear")[:, 0]
    torch.testing.assert_close(maps, ref)


def test_stage_modules_of_torchvision_wrappers_are_called_modules():
    model = convzoo.create_model("tv_resnet18", num_classes=4)
    named = dict(model.named_modules())
    for name, module in stage_modules(model):
        assert any(m is module for m in named.values()), name


def test_unknown_layer_lists_the_stages():
    model = convzoo.create_model("speednet")
    with pytest.raises(ConvzooError, match=r"unknown layer 'b9'.*b1, b2, b3, b4"):
        resolve_layer(model, "b9")
    assert resolve_layer(model, "features.b2.0") is model.features.b2[0]


def test_a_layer_without_a_map_is_refused():
    model = convzoo.create_model("speednet").eval()
    with pytest.raises(ConvzooError, match="N x C x H x W"):
        class_activation_maps(
            model, torch.rand(1, 1, 28, 28), torch.tensor([0]), layer=model.head.fc
        )
