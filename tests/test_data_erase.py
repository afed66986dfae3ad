"""Random erasing (``erase`` in the augmentation spec): batched, per image, torchvision's rules."""

import math

import pytest
import torch
from torchvision import transforms as T

from convzoo.data import parse_augment
from convzoo.data.augment import AugmentSpecError, Erase


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_each_image_is_kept_or_loses_one_rectangle_on_every_channel():
    x = torch.rand(200, 3, 20, 24, generator=gen(1)) + 0.1  # no zero pixel before
    op = Erase(p=0.7)
    y = op(x, gen(5))
    top, left, h, w = op.params(200, 20, 24, gen(5)).T
    for k in range(200):
        expected = torch.zeros(20, 24, dtype=torch.bool)
        expected[top[k] : top[k] + h[k], left[k] : left[k] + w[k]] = True
        assert torch.equal(y[k] == 0, expected.expand(3, -1, -1))
        assert torch.equal(y[k][~expected.expand(3, -1, -1)], x[k][~expected.expand(3, -1, -1)])
    erased = (h > 0).float().mean().item()
    assert 0.6 < erased < 0.8  # p = 0.7
    assert len({(int(a), int(b)) for a, b in zip(top[h > 0], left[h > 0])}) > 50  # per image


def test_rectangles_follow_torchvision_random_erasing():
    n, size, scale, ratio = 3000, 28, (0.02, 0.33), (0.3, 3.3)
    ours = Erase(1.0, scale, ratio).params(n, size, size, gen(0))
    torch.manual_seed(0)
    image = torch.zeros(1, size, size)
    theirs = torch.tensor(
        [T.RandomErasing.get_params(image, scale, ratio, value=[0])[:4] for _ in range(n)]
    )
    for rects in (ours, theirs):
        assert (rects[:, 0] + rects[:, 2] <= size).all() and (
            rects[:, 1] + rects[:, 3] <= size
        ).all()
    area = [(r[:, 2] * r[:, 3]).double().mean().item() / size**2 for r in (ours, theirs)]
    assert area[0] == pytest.approx(area[1], abs=0.01)
    log_aspect = [
        (r[:, 2].double() / r[:, 3].clamp_min(1)).log().mean().item() for r in (ours, theirs)
    ]
    assert log_aspect[0] == pytest.approx(log_aspect[1], abs=0.05)
    assert abs(log_aspect[0]) < 0.1  # log-uniform in [0.3, 3.3]: centred near 0
    assert math.isclose(ours[:, 2].gt(0).float().mean().item(), 1.0)


def test_same_seed_same_rectangles():
    x = torch.rand(16, 1, 28, 28)
    assert torch.equal(Erase()(x, gen(3)), Erase()(x, gen(3)))
    assert not torch.equal(Erase()(x, gen(3)), Erase()(x, gen(4)))
    assert Erase()(x[:0], gen(0)).shape == (0, 1, 28, 28)


def test_spec_round_trips():
    assert parse_augment("erase").ops == [Erase()]
    op = parse_augment("hflip,erase:0.25:0.05-0.2:0.5-2").ops[1]
    assert op == Erase(0.25, (0.05, 0.2), (0.5, 2.0))
    assert parse_augment(str(op)).ops == [op]


@pytest.mark.parametrize("spec", ["erase:2", "erase:0.5:0.5-0.1", "erase:0.5:0.1-2", "erase:1:::"])
def test_bad_erase_specs_name_the_bad_part(spec):
    with pytest.raises(AugmentSpecError, match=spec):
        parse_augment(spec)
