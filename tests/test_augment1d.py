"""Sequence augmentations: per-sample parameters from the generator, batched, reproducible."""

import pytest
import torch

from convzoo.data import parse_augment1d
from convzoo.data.augment import AugmentSpecError
from convzoo.data.augment1d import Jitter, Scale, Shift, WindowCrop
from convzoo.errors import UnknownNameError


def ramp(n=64, c=2, length=20):
    """Series whose values name their step: x[i, ch, t] = t + 1 (+ 100 for channel 1)."""
    t = torch.arange(1, length + 1, dtype=torch.float32)
    return torch.stack([t, t + 100]).expand(n, c, length).clone()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


SPECS = ["shift:5", "crop:0.8", "scale:0.5-1.5", "jitter:0.1", "shift:3,crop,scale:0.9-1.1"]


@pytest.mark.parametrize("spec", SPECS)
def test_same_seed_same_batch_other_seed_other_batch(spec):
    aug = parse_augment1d(spec)
    x = ramp()
    a, b, c = aug(x, gen(0)), aug(x, gen(0)), aug(x, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, ramp())  # the input is left alone


def test_shift_moves_each_series_by_its_own_whole_steps():
    x = ramp(n=400)
    y = Shift(4)(x, gen())
    t = torch.arange(20)
    shifts = []
    for row in y[:, 0]:
        s = 10 - int(row[10] - 1)  # step 10 holds input step 10 - s (value 11 - s)
        shifts.append(s)
        # the input moved by s, its first or last value repeated into the empty steps
        torch.testing.assert_close(row, (t - s).clamp(0, 19).float() + 1)
    assert set(shifts) == set(range(-4, 5))  # every shift in [-MAX, MAX] occurs
    counts = torch.bincount(torch.tensor(shifts) + 4).float()
    assert counts.min() > 400 / 9 / 2  # roughly uniform
    torch.testing.assert_close(y[:, 1] - y[:, 0], torch.full_like(y[:, 0], 100.0))  # together
    assert torch.equal(Shift(0)(x, gen()), x)


def test_window_crop_stretches_a_window_of_the_given_fraction():
    x = ramp(n=200)
    y = WindowCrop(0.5)(x, gen())
    # linear interpolation of a ramp is a ramp: slope = fraction, start anywhere it fits
    steps = y[:, 0, 1:] - y[:, 0, :-1]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5))
    first, last = y[:, 0, 0], y[:, 0, -1]
    assert first.min() >= 1 and last.max() <= 20 + 1e-5
    torch.testing.assert_close(last - first, torch.full_like(first, 0.5 * 19))
    assert first.std() > 1  # the window's start differs per series
    torch.testing.assert_close(y[:, 1] - y[:, 0], torch.full_like(y[:, 0], 100.0))
    assert torch.equal(WindowCrop(1.0)(x, gen()), x)


def test_scale_draws_one_factor_per_series_in_range():
    x = ramp(n=500)
    y = Scale(0.5, 2.0)(x, gen())
    f = y / x
    per_series = f[:, 0, 0]
    torch.testing.assert_close(f, per_series.view(-1, 1, 1).expand_as(f))  # one per series
    assert per_series.min() >= 0.5 and per_series.max() <= 2.0
    assert per_series.min() < 0.6 and per_series.max() > 1.9  # the range is used


def test_jitter_adds_noise_of_the_given_sigma():
    x = torch.zeros(200, 3, 100)
    y = Jitter(0.2)(x, gen())
    assert abs(y.std().item() - 0.2) < 0.01 and abs(y.mean().item()) < 0.01
    assert not torch.equal(y[0], y[1])  # independent per series


def test_empty_batch_and_float64():
    for spec in SPECS:
        aug = parse_augment1d(spec)
        assert aug(torch.zeros(0, 1, 10), gen()).shape == (0, 1, 10)
        assert aug(ramp(4).double(), gen()).dtype == torch.float64


def test_spec_strings_round_trip():
    assert parse_augment1d("none") is None and parse_augment1d("") is None
    aug = parse_augment1d("shift:3, crop, scale:0.8-1.2, jitter:0.03")
    assert str(aug) == "shift:3,crop:0.9,scale:0.8-1.2,jitter:0.03"
    assert str(parse_augment1d(str(aug))) == str(aug)


@pytest.mark.parametrize(
    "spec,words",
    [
        ("shift", "shift:MAX"),
        ("shift:-2", "MAX must be >= 0"),
        ("shift:1.5", "shift:MAX"),
        ("crop:0", "FRAC must be in (0, 1]"),
        ("crop:1.5", "FRAC must be in (0, 1]"),
        ("scale:2-1", "scale:LO-HI"),
        ("scale:0-1", "0 < LO <= HI"),
        ("jitter:abc", "jitter:SIGMA"),
        ("jitter:-1", "SIGMA must be >= 0"),
        ("jitter:0.1:2", "jitter:SIGMA"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, words):
    with pytest.raises(AugmentSpecError) as e:
        parse_augment1d(spec)
    assert words in str(e.value) and spec in str(e.value) and "\n" not in str(e.value)


def test_unknown_op_lists_the_sequence_ops():
    with pytest.raises(UnknownNameError, match=r"hflip.*shift:MAX, crop"):
        parse_augment1d("hflip")
