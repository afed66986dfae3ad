import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import ConvzooError, InputSizeError, UnknownNameError
from convzoo.models import get_model_entry

# image models (1-D models have their own tests in test_models1d.py)
ALL = [n for n in convzoo.list_models() if get_model_entry(n).spatial_dims == 2]


def test_registry_lists_the_chapter():
    for name in [
        "lenet",
        "lenet_bn",
        "alexnet",
        "vgg11",
        "nin",
        "googlenet",
        "resnet18",
        "resnet34",
        "densenet",
    ]:
        assert name in ALL
    assert convzoo.list_models("resnet*") == ["resnet18", "resnet1d", "resnet34"]


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownNameError) as e:
        convzoo.create_model("resnet19")
    msg = str(e.value)
    assert "resnet19" in msg and "resnet18" in msg and "lenet" in msg
    assert isinstance(e.value, ConvzooError)


def test_unknown_option_lists_accepted_ones():
    with pytest.raises(ConvzooError, match="width_ratio"):
        convzoo.create_model("vgg11", widht_ratio=4)


def _sizes(name):
    model = convzoo.create_model(name)
    default = get_model_entry(name).default_image_size
    smallest = model.min_input_size
    return model, sorted({default, max(smallest, 1), default + 13})


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_at_three_sizes(name):
    model, sizes = _sizes(name)
    model.eval()
    assert len(sizes) == 3
    with torch.no_grad():
        for s in sizes:
            out = model(torch.randn(2, 1, s, s))
            assert out.shape == (2, 10), (name, s)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_channels_and_classes_are_configurable(name):
    size = get_model_entry(name).default_image_size
    model = convzoo.create_model(name, num_classes=7, in_channels=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 7)
    with pytest.raises(InputSizeError, match="3-channel"):
        model(torch.randn(1, 1, size, size))


@pytest.mark.parametrize("name", ALL)
def test_backward_gives_finite_gradients(name):
    model = convzoo.create_model(name).train()
    s = max(model.min_input_size, 32) if name not in ("lenet", "lenet_bn") else 28
    x = torch.randn(4, 1, s, s)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


@pytest.mark.parametrize("name", convzoo.list_models())
def test_parts_in_order_compute_forward(name):
    with torch.device("meta"):  # the big networks' weights are not needed to see their parts
        model = convzoo.create_model(name).eval()
    assert [n for n, _ in model.parts] == [n for n, _ in model.stages] + ["head"]
    # together the parts hold every parameter and buffer of the model
    held = {id(t) for _, part in model.parts for t in (*part.parameters(), *part.buffers())}
    assert held == {id(t) for t in (*model.parameters(), *model.buffers())}
    if sum(p.numel() for p in model.parameters()) > 20e6:
        return  # AlexNet, VGG: initialising 50-130 M weights costs ~10 s here, for no new path
    model = convzoo.create_model(name).eval()
    x = torch.randn(2, 1, *[model.min_input_size] * model.spatial_dims)
    with torch.no_grad():
        y = x
        for _, part in model.parts:
            y = part(y)
        assert torch.equal(y, model(x))


@pytest.mark.parametrize("name", ALL)
def test_reset_classifier_changes_output_width(name):
    model = convzoo.create_model(name).eval()
    old = model.get_classifier()
    new = model.reset_classifier(3)
    assert model.get_classifier() is new and new is not old
    assert model.num_classes == 3 and model.model_kwargs["num_classes"] == 3
    s = get_model_entry(name).default_image_size
    with torch.no_grad():
        assert model(torch.randn(2, 1, s, s)).shape == (2, 3)


DEPTH_OPTIONS = [
    ("vgg11", {"conv_arch": [[1, 8], [1, 16]], "hidden": 8}),
    ("densenet", {"growth_rate": 4, "num_convs_in_dense_blocks": [1, 1]}),
    ("densenet", {"growth_rate": 4, "num_convs_in_dense_blocks": [1, 1, 1]}),
]


@pytest.mark.parametrize(("name", "options"), [(n, {}) for n in ALL] + DEPTH_OPTIONS)
def test_too_small_input_names_model_and_smallest_size(name, options):
    model = convzoo.create_model(name, **options).eval()
    m = model.min_input_size

    def layers(side):  # the network without its input check
        return model.forward_head(model.forward_features(torch.randn(1, 1, side, side)))

    with torch.no_grad():
        model(torch.randn(1, 1, m, m))  # the declared smallest size works
        if m > 1:
            with pytest.raises(RuntimeError):  # and is the smallest: the layers fail below it
                layers(m - 1)
            with pytest.raises(InputSizeError) as e:
                model(torch.randn(1, 1, m - 1, m + 20))
            assert name in str(e.value) and f"{m}x{m}" in str(e.value)
            assert "\n" not in str(e.value)


def test_smallest_sizes_follow_the_arithmetic():
    # LeNet: 12 -> conv5 pad2 -> 12 -> pool -> 6 -> conv5 -> 2 -> pool -> 1; 11 gives 0
    assert convzoo.create_model("lenet").min_input_size == 12
    # AlexNet: the last 3x3/2 max-pool needs a 3x3 input: 65 px is the smallest
    assert convzoo.create_model("alexnet").min_input_size == 65


def test_wrong_rank_is_a_clear_error():
    with pytest.raises(InputSizeError, match="N x C x H x W"):
        convzoo.create_model("lenet")(torch.randn(1, 28, 28))


def test_small_vgg_is_the_books():
    small = convzoo.create_model("vgg11", width_ratio=4)
    # the book's ratio-4 VGG: blocks of 16, 32, 64, 128, 128 channels, 4096-wide FC layers
    convs = [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 32, 64, 64, 128, 128, 128, 128]
    assert small.head.fc1.in_features == 128 * 7 * 7


def test_lenet_bn_is_the_books():
    from convzoo import BatchNorm

    net = convzoo.create_model("lenet_bn")
    norms = [m for m in net.modules() if isinstance(m, BatchNorm)]
    assert [b.num_features for b in norms] == [6, 16, 120, 84]
    assert net.head.fc1.in_features == 16 * 4 * 4
    torch_bn = convzoo.create_model("lenet_bn", norm="torch")
    assert not any(isinstance(m, BatchNorm) for m in torch_bn.modules())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(net) == count(torch_bn)


def test_variants():
    relu = convzoo.create_model("lenet", activation="relu", pool="max")
    assert any(isinstance(m, nn.MaxPool2d) for m in relu.modules())
    small = convzoo.create_model("resnet18", stem="small").eval()
    with torch.no_grad():
        feats = small.forward_features(torch.randn(1, 1, 28, 28))
    assert feats.shape == (1, 512, 4, 4)  # stride-1 stem: 28 -> 28 -> 14 -> 7 -> 4
    with pytest.raises(ConvzooError, match="stem"):
        convzoo.create_model("resnet18", stem="huge")
