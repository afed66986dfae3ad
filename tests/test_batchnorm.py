import pytest
import torch
from torch import nn

from convzoo import BatchNorm


@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 9), (8, 5, 7, 6)])
def test_matches_torch_batchnorm(shape):
    torch.manual_seed(1)
    ours = BatchNorm(5).double()
    ref = (nn.BatchNorm1d(5) if len(shape) <= 3 else nn.BatchNorm2d(5)).double()
    with torch.no_grad():
        w, b = torch.randn(5), torch.randn(5)
        for m in (ours, ref):
            m.weight.copy_(w)
            m.bias.copy_(b)
    for step in range(4):
        x = (torch.randn(*shape) * (step + 1) + step).double()
        xa = x.clone().requires_grad_()
        xb = x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        torch.testing.assert_close(ya, yb, atol=1e-5, rtol=0)
        g = torch.randn_like(ya)
        ya.backward(g)
        yb.backward(g)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.running_mean, ref.running_mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.running_var, ref.running_var, atol=1e-5, rtol=0)
        ours.zero_grad()
        ref.zero_grad()
    ours.eval()
    ref.eval()
    x = torch.randn(*shape).double()
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


def test_float32_matches_within_1e_5():
    ours, ref = BatchNorm(3), nn.BatchNorm2d(3)
    x = torch.randn(32, 3, 8, 8)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.running_var, ref.running_var, atol=1e-5, rtol=0)


def test_state_dict_is_interchangeable_with_torch():
    ref = nn.BatchNorm2d(4)
    ours = BatchNorm(4)
    ours.load_state_dict(ref.state_dict())  # strict: same names and shapes


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchNorm(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchNorm(3)(torch.randn(2, 3, 4, 4, 4))


def test_bf16_input_keeps_dtype():
    y = BatchNorm(3)(torch.randn(4, 3, 2, 2, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16
