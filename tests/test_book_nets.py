"""convzoo's networks against the book's, built without convzoo: ``benchmarks/book_nets.py``
(written from the chapter code as it stands) and the published ``d2l`` package where it has
the network. Same weights in, same outputs out, in training mode (batch statistics, dropout
from the same seed) and in evaluation mode (running statistics), fp32 to 1e-5."""

import ast
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models import BatchNorm, get_model_entry

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import book_nets  # noqa: E402

#: (convzoo name, its options, the book's builder, input side)
CASES = [
    ("lenet", {}, book_nets.lenet, 28),
    ("lenet_bn", {}, book_nets.lenet_bn, 28),
    ("alexnet", {}, book_nets.alexnet, 224),
    ("vgg11", {"width_ratio": 4}, lambda: book_nets.vgg(book_nets.VGG11_SMALL_ARCH), 224),
    ("nin", {}, book_nets.nin, 224),
    ("googlenet", {}, book_nets.googlenet, 96),
    ("resnet18", {}, book_nets.resnet18, 96),
    ("resnet18", {"stem": "small"}, book_nets.resnet18_small, 28),
    ("densenet", {}, book_nets.densenet, 96),
]
IDS = [f"{n}{'-' + '-'.join(map(str, o.values())) if o else ''}" for n, o, *_ in CASES]


def _stats(net: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """Every batch-norm layer's running statistics, in order: the book's scratch layers keep
    them as plain attributes (``moving_mean``), torch's and convzoo's as buffers."""
    out = []
    for m in net.modules():
        if isinstance(m, book_nets.BatchNorm):
            out.append((m, "moving_mean", "moving_var"))
        elif isinstance(getattr(m, "running_mean", None), torch.Tensor):
            out.append((m, "running_mean", "running_var"))
    return out


def _randomise(net: nn.Module) -> None:
    """Weights that carry the input through every layer (He init: PyTorch's default shrinks
    the signal so much over GoogLeNet's 22 layers that its output is its last bias to 1e-6,
    whatever b2 does), small biases, batch-norm scales, shifts and statistics away from 1 and
    0 so that both are used."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) / 100)
        for m, mean, var in _stats(net):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) / 10)
            getattr(m, mean).copy_(torch.randn(m.weight.shape, generator=g) / 10)
            getattr(m, var).copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


def _load(book: nn.Module, ours: nn.Module) -> None:
    """Ours' parameters and running statistics into the book's network, in registration order
    (the shapes must match up to the book's (1, C, 1, 1) scale and shift)."""
    bp, op = list(book.parameters()), list(ours.parameters())
    assert [p.numel() for p in bp] == [p.numel() for p in op]
    bs, os_ = _stats(book), _stats(ours)
    assert len(bs) == len(os_)
    with torch.no_grad():
        for b, o in zip(bp, op):
            b.copy_(o.reshape(b.shape))
        for (bm, bmean, bvar), (om, omean, ovar) in zip(bs, os_):
            shape = getattr(bm, bmean).shape
            setattr(bm, bmean, getattr(om, omean).reshape(shape).clone())
            setattr(bm, bvar, getattr(om, ovar).reshape(shape).clone())


def _pair(name: str, options: dict, builder, size: int) -> tuple[nn.Module, nn.Module]:
    ours = convzoo.create_model(name, **options)
    _randomise(ours)
    book = book_nets.materialise(builder(), (1, 1, size, size))
    _load(book, ours)
    return ours, book


def _outputs(net: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    net.train(train)
    torch.manual_seed(7)  # the same dropout masks on both sides
    with torch.set_grad_enabled(train):  # the book's scratch batch norm: train = autograd on
        return net(x)


@pytest.mark.parametrize(("name", "options", "builder", "size"), CASES, ids=IDS)
def test_same_function_as_the_book(name, options, builder, size):
    ours, book = _pair(name, options, builder, size)
    x = torch.randn(4, 1, size, size)
    for train in (False, True):
        mine, theirs = _outputs(ours, x, train), _outputs(book, x, train)
        assert mine.std(0).mean() > 1e-3  # the outputs depend on the input, well above 1e-5
        where = f"train={train}: "
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5, msg=lambda m: where + m)  # noqa: B023


@pytest.mark.parametrize(("name", "options", "builder", "size"), CASES, ids=IDS)
def test_parameter_count_equals_the_books(name, options, builder, size):
    ours = convzoo.create_model(name, **options)
    book = book_nets.materialise(builder(), (1, 1, size, size))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(book)
    if not options:
        assert get_model_entry(name).default_image_size == size


def test_full_width_vgg_has_the_books_parameters():
    """VGG-11 as the chapter prints its layers (the one it trains is a quarter as wide)."""
    with torch.device("meta"):
        ours = convzoo.create_model("vgg11")
        book = book_nets.materialise(book_nets.vgg(), (1, 1, 224, 224))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in book.parameters())


def test_running_statistics_move_as_the_books():
    """One training step's running statistics: torch's batch norm (ResNet, DenseNet) moves
    them as the book's nets do; convzoo's scratch batch norm (LeNet-BN) moves the mean as the
    book's ``batch_norm`` does and the variance with the unbiased batch variance, PyTorch's
    convention (``models/batchnorm.py``): the book's figure times n / (n - 1) in the update."""
    for name, size in (("lenet_bn", 28), ("densenet", 32)):
        ours, book = _pair(name, {}, book_nets.BOOK_NETS[name][0], size)
        before = [getattr(m, v).flatten().clone() for m, _, v in _stats(ours)]
        counts = {}  # values per channel in the last batch each layer saw
        hooks = [
            m.register_forward_pre_hook(lambda m, a: counts.update({m: a[0][:, 0].numel()}))  # noqa: B023
            for m, _, _ in _stats(ours)
        ]
        x = torch.randn(4, 1, size, size)
        _outputs(ours, x, True), _outputs(book, x, True)
        for h in hooks:
            h.remove()
        pairs = zip(_stats(ours), _stats(book), before, counts.values())
        for (om, omean, ovar), (bm, bmean, bvar), v0, n in pairs:
            torch.testing.assert_close(
                getattr(om, omean).flatten(), getattr(bm, bmean).flatten(), rtol=0, atol=1e-6
            )
            theirs = getattr(bm, bvar).flatten()
            if isinstance(om, BatchNorm):  # 0.9 v0 + 0.1 s (book) against 0.9 v0 + 0.1 s n/(n-1)
                theirs = 0.9 * v0 + (theirs - 0.9 * v0) * n / (n - 1)
            torch.testing.assert_close(getattr(om, ovar).flatten(), theirs, rtol=1e-5, atol=1e-6)


def test_book_nets_do_not_import_convzoo():
    tree = ast.parse((BENCH / "book_nets.py").read_text())
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert imported and not any(m.split(".")[0] == "convzoo" for m in imported), imported


# ---- the published package (d2l==1.0.3: the Makefile installs it without its pinned deps) ----
d2l = pytest.importorskip("d2l.torch", reason="needs the d2l package: pip install --no-deps d2l")


@pytest.mark.parametrize(
    ("name", "options", "package", "written", "size"),
    [
        ("lenet", {}, lambda: d2l.LeNet().net, book_nets.lenet, 28),
        ("resnet18", {"stem": "small"}, lambda: d2l.resnet18(10, 1), book_nets.resnet18_small, 28),
    ],
    ids=["lenet", "resnet18-small"],
)
def test_same_function_as_the_published_package(name, options, package, written, size):
    """convzoo and this file's copy against the package's own network, in both modes."""
    ours, book = _pair(name, options, package, size)
    copy = book_nets.materialise(written(), (1, 1, size, size))
    _load(copy, ours)
    x = torch.randn(4, 1, size, size)
    for train in (False, True):
        theirs = _outputs(book, x, train)
        torch.testing.assert_close(_outputs(ours, x, train), theirs, rtol=0, atol=1e-5)
        torch.testing.assert_close(_outputs(copy, x, train), theirs, rtol=0, atol=1e-5)
