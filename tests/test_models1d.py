"""The 1-D members of the zoo (sequences N x C x L): shapes, parameter counts, input checks."""

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import InputSizeError
from convzoo.models import get_model_entry, register_model
from convzoo.models._registry import ModelOptionError
from convzoo.models.fcn import SameConv1d

SEQ = [n for n in convzoo.list_models() if get_model_entry(n).spatial_dims == 1]


def conv(cin, cout, k):
    return cin * cout * k + cout  # weights + bias (the reference keeps conv biases)


def bn(c):
    return 2 * c  # gamma and beta (running statistics are buffers)


def linear(i, o):
    return i * o + o


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_the_issue_asks_for_three_networks():
    assert {"lenet1d", "fcn1d", "resnet1d"} <= set(SEQ)
    assert get_model_entry("resnet1d").default_input_size() == (1, 150)
    assert get_model_entry("resnet18").default_input_size(3) == (3, 96, 96)


@pytest.mark.parametrize("cin,k", [(1, 2), (6, 4)])
def test_fcn_parameter_count(cin, k):
    # Wang et al. 2017 / hfawaz fcn.py: 128-256-128 filters of 8-5-3 steps, BN, GAP, dense
    expected = (
        conv(cin, 128, 8) + bn(128) + conv(128, 256, 5) + bn(256) + conv(256, 128, 3) + bn(128)
    ) + linear(128, k)
    model = convzoo.create_model("fcn1d", in_channels=cin, num_classes=k)
    assert count(model) == expected
    if cin == 1 and k == 2:
        assert expected == 264_962


@pytest.mark.parametrize("cin,k", [(1, 2), (12, 9)])
def test_resnet1d_parameter_count(cin, k):
    def block(i, o, shortcut_conv):
        body = conv(i, o, 8) + bn(o) + conv(o, o, 5) + bn(o) + conv(o, o, 3) + bn(o)
        return body + (conv(i, o, 1) if shortcut_conv else 0) + bn(o)

    # hfawaz resnet.py: the third block's shortcut is batch norm alone (128 -> 128 channels)
    expected = block(cin, 64, True) + block(64, 128, True) + block(128, 128, False)
    expected += linear(128, k)
    model = convzoo.create_model("resnet1d", in_channels=cin, num_classes=k)
    assert count(model) == expected
    if cin == 1 and k == 2:
        assert expected == 504_258
    shortcuts = [type(b.shortcut).__name__ for b in model.features]
    assert shortcuts == ["Sequential", "Sequential", "BatchNorm1d"]


@pytest.mark.parametrize("fold,length", [(2, 9), (4, 40), (3, 1)])
def test_a_folded_resnet1d_is_a_strided_first_convolution_over_every_step(fold, length):
    """``fold`` turns runs of steps into channels, losing none: the first convolution over the
    folded series is a convolution with ``fold`` times the taps, strided by ``fold``, over the
    series itself (its last run zero-padded); the weights keep their names."""
    from convzoo.explain.explanation import unfolded
    from convzoo.models.resnet1d import fold_steps

    torch.manual_seed(0)
    x = torch.randn(2, 3, length)
    folded = fold_steps(x, fold)
    steps = -(-length // fold)
    assert folded.shape == (2, 3 * fold, steps)
    padded = nn.functional.pad(x, (0, steps * fold - length))
    for c, j, t in [(0, 0, 0), (2, fold - 1, steps - 1), (1, fold // 2, steps // 2)]:
        assert folded[:, c * fold + j, t].equal(padded[:, c, t * fold + j])  # every step kept
    w = torch.randn(5, 3 * fold, min(2, steps))
    got = nn.functional.conv1d(folded, w)
    want = nn.functional.conv1d(padded, unfolded(w, {"fold": fold}), stride=fold)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    plain = convzoo.create_model("resnet1d", in_channels=3, num_classes=4)
    model = convzoo.create_model("resnet1d", in_channels=3, num_classes=4, fold=fold)
    shapes = {k: v.shape for k, v in plain.state_dict().items()}
    wider = {k for k, v in model.state_dict().items() if v.shape != shapes[k]}
    assert model.state_dict().keys() == shapes.keys()  # saved runs keep their names
    assert wider == {"features.b1.body.0.0.weight", "features.b1.shortcut.0.weight"}
    assert model.eval()(x).shape == (2, 4) and model.min_input_size == 1
    with pytest.raises(ModelOptionError, match="fold must be >= 1, got width 64, fold 0"):
        convzoo.create_model("resnet1d", fold=0)


def test_lenet1d_is_the_books_lenet_with_5_tap_convs():
    expected = conv(1, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84)
    expected += linear(84, 10)
    net = convzoo.create_model("lenet1d")
    assert count(net) == expected == 59_666
    # the 2-D LeNet differs only by its 5x5 kernels: 25 - 5 more weights per (in, out) pair
    assert count(convzoo.create_model("lenet")) - expected == (1 * 6 + 6 * 16) * 20
    assert net.min_input_size == 12  # 12 -> 12 -> 6 -> 2 -> 1, as the 2-D LeNet's side
    with torch.no_grad():  # 108..111 steps come out as 16 x 25: the head's pooling passes through
        for length in (108, 111):
            feats = net.forward_features(torch.randn(2, 1, length))
            assert feats.shape == (2, 16, 25)
            assert net.head.pool(feats) is feats
    bn_net = convzoo.create_model("lenet1d", norm="scratch")
    assert count(bn_net) == expected + bn(6) + bn(16) + bn(120) + bn(84)


@pytest.mark.parametrize("name", ["fcn1d", "resnet1d"])
def test_fcn_and_resnet_keep_the_length(name):
    model = convzoo.create_model(name).eval()
    with torch.no_grad():
        for length in (1, 24, 150, 361):  # "same" padding and no pooling until the GAP
            assert model.forward_features(torch.randn(2, 1, length)).shape == (2, 128, length)
    assert model.min_input_size == 1


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_same_conv_pads_as_keras_without_a_warning(k):
    ours = SameConv1d(3, 4, k)
    ref = nn.Conv1d(3, 4, k, padding="same")  # pads (k - 1) // 2 left, the rest right
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's warning about even kernels
        expected = ref(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ours(x)
    torch.testing.assert_close(y, expected)
    # Keras (TensorFlow) "same": the output's first step sees (k - 1) // 2 zeros on its left
    w = ours.weight.detach()
    first = (w[:, :, (k - 1) // 2 :] * x[:1, None, :, : k - (k - 1) // 2]).sum((2, 3))
    torch.testing.assert_close(y[0, :, 0], first[0] + ours.bias.detach())


def _lengths(name):
    model = convzoo.create_model(name)
    default = get_model_entry(name).default_image_size
    return model, sorted({default, model.min_input_size, default + 13})


@pytest.mark.parametrize("name", SEQ)
def test_forward_shapes_at_three_lengths(name):
    model, lengths = _lengths(name)
    model.eval()
    with torch.no_grad():
        for length in lengths:
            out = model(torch.randn(2, 1, length))
            assert out.shape == (2, 10), (name, length)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SEQ)
def test_channels_and_classes_are_configurable(name):
    model = convzoo.create_model(name, num_classes=4, in_channels=6).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 6, 100)).shape == (3, 4)
    with pytest.raises(InputSizeError, match="6-channel sequences"):
        model(torch.randn(1, 1, 100))


@pytest.mark.parametrize("name", SEQ)
def test_backward_gives_finite_gradients(name):
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=3, in_channels=2).train()
    x = torch.randn(6, 2, 40)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter takes part


@pytest.mark.parametrize("name", SEQ)
def test_reset_classifier_and_stages(name):
    model = convzoo.create_model(name).eval()
    new = model.reset_classifier(3)
    assert model.get_classifier() is new and model.model_kwargs["num_classes"] == 3
    assert [s for s, _ in model.stages][:2] == ["b1", "b2"]
    with torch.no_grad():
        x = torch.randn(2, 1, 150)
        assert model.forward_head(model.forward_features(x)).shape == (2, 3)


@pytest.mark.parametrize("name", SEQ)
def test_wrong_inputs_are_one_line_errors(name):
    model = convzoo.create_model(name).eval()
    with pytest.raises(InputSizeError, match="N x C x L") as e:
        model(torch.randn(1, 1, 28, 28))  # an image given to a sequence model
    assert name in str(e.value) and "\n" not in str(e.value)
    m = model.min_input_size
    if m > 1:
        with pytest.raises(InputSizeError) as e:
            model(torch.randn(1, 1, m - 1))
        assert f"{name} needs sequences of at least {m} steps, got {m - 1}" in str(e.value)
        assert "\n" not in str(e.value)


def test_image_models_refuse_sequences():
    with pytest.raises(InputSizeError, match="images shaped N x C x H x W"):
        convzoo.create_model("lenet")(torch.randn(1, 1, 28))


def test_register_model_needs_exactly_one_size():
    with pytest.raises(RuntimeError, match="exactly one"):
        register_model("x1d", image_size=28, length=100, family="x")
    with pytest.raises(RuntimeError, match="exactly one"):
        register_model("x1d", family="x")


def test_summary_of_a_sequence_model():
    s = convzoo.summary(convzoo.create_model("fcn1d", num_classes=2), (1, 150))
    assert s.total_params == 264_962 and s.output_shape == (1, 2)
    assert [r.output_shape for r in s.rows if r.name == "features.b2.0"] == [(1, 256, 150)]
    # conv FLOPs: 2 x in x out x taps x steps per layer
    convs = 2 * 150 * (1 * 128 * 8 + 128 * 256 * 5 + 256 * 128 * 3)
    assert convs <= s.flops < convs * 1.01
    with pytest.raises(ValueError, match="C, L"):
        convzoo.summary(convzoo.create_model("fcn1d"), (150,))


@pytest.mark.slow
def test_cli_models_and_summary_show_sequence_sizes():
    def run(*args):
        cmd = [sys.executable, "-m", "convzoo", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    r = run("models", "*1d")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:4]}
    assert rows["resnet1d"][2] == "1x150" and rows["fcn1d"][2] == "1x150"
    r = run("summary", "resnet1d", "--num-classes", "2", "--input-size", "3,60")
    assert r.returncode == 0, r.stderr
    assert "input 1 x 3 x 60" in r.stdout and "1 x 128 x 60" in r.stdout
    r = run("summary", "lenet1d", "--input-size", "1,11")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        "convzoo: error: lenet1d needs sequences of at least 12 steps, got 11; pad the series "
        "or pick a model that downsamples less"
    )
