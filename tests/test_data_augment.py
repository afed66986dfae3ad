import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from convzoo.data import DeviceLoader, ImageDataset, parse_augment
from convzoo.data.augment import (
    AugmentSpecError,
    ColorJitter,
    Flip,
    PadCrop,
    ResizedCrop,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from convzoo.errors import ConvzooError, UnknownNameError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(n=64, c=3, h=20, w=24):
    return torch.rand(n, c, h, w, generator=gen(123))


# -- flips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [-1, -2])
def test_flip_per_sample_and_twice_is_identity(dim):
    x = batch()
    y = Flip(dim)(x, gen(1))
    flipped = torch.tensor([torch.equal(a, b.flip(dim)) for a, b in zip(y, x)])
    kept = torch.tensor([torch.equal(a, b) for a, b in zip(y, x)])
    assert (flipped | kept).all()
    assert 10 < int(flipped.sum()) < 54  # its own coin per image
    assert torch.equal(Flip(dim)(y, gen(1)), x)  # same draws flip the same images back
    assert torch.equal(Flip(dim, p=1.0)(Flip(dim, p=1.0)(x, gen(2)), gen(3)), x)
    assert torch.equal(Flip(dim, p=0.0)(x, gen(2)), x)


# -- padded crop ------------------------------------------------------------------------------
def test_pad_crop_windows_are_sub_windows_of_the_padded_image():
    x, pad = batch(), 3
    y = PadCrop(pad)(x, gen(1))
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    offsets = set()
    for n in range(len(x)):
        found = [
            (i, j)
            for i in range(2 * pad + 1)
            for j in range(2 * pad + 1)
            if torch.equal(padded[n, :, i : i + x.shape[2], j : j + x.shape[3]], y[n])
        ]
        assert len(found) == 1, n  # exactly one in-bounds window of the padded image
        offsets.add(found[0])
    assert len(offsets) > 20  # parameters differ across the batch


def test_pad_crop_offsets_cover_the_range():
    x = torch.arange(9.0).view(1, 1, 3, 3).repeat(2000, 1, 1, 1)
    y = PadCrop(1)(x, gen(5))
    # the pixel at the window's centre tells the offset: all 9 offsets occur
    assert len(set(y[:, 0, 1, 1].tolist())) == 9


# -- RandomResizedCrop ------------------------------------------------------------------------
def test_rrc_params_follow_torchvision_rules():
    op = ResizedCrop(None, scale=(0.1, 1.0), ratio=(0.5, 2.0))
    top, left, h, w = op.params(4000, 40, 50, gen(1)).unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 40).all() and (left + w <= 50).all() and (h > 0).all() and (w > 0).all()
    area = (h * w).float() / (40 * 50)
    assert area.min() > 0.08 and area.max() <= 1.0
    assert (w / h).float().min() > 0.45 and (w / h).float().max() < 2.2
    assert len(set(zip(top.tolist(), left.tolist(), h.tolist(), w.tolist()))) > 3000
    # torchvision's own draws of the same distribution: similar mean area and ratio
    rrc = v2.RandomResizedCrop(10, scale=(0.1, 1.0), ratio=(0.5, 2.0))
    torch.manual_seed(0)
    tv = torch.tensor([rrc.make_params([torch.zeros(1, 40, 50)])["height"] for _ in range(4000)])
    assert abs(tv.float().mean() - h.float().mean()) < 1.0


def test_rrc_falls_back_to_a_central_crop_like_torchvision():
    op = ResizedCrop(None, scale=(1.0, 1.0), ratio=(2.0, 2.0))  # no try can fit a square image
    p = op.params(8, 30, 30, gen(0))
    assert (p == torch.tensor([7, 0, 15, 30])).all()  # w = 30, h = round(30 / 2), top (30-15)//2


@pytest.mark.parametrize("size", [None, (40, 36), (7, 5)])
def test_rrc_resamples_like_torchvision_resized_crop(size):
    x = batch(16)
    op = ResizedCrop(size, scale=(0.2, 1.0))
    y = op(x, gen(7))
    params = op.params(16, 20, 24, gen(7))
    out = size or (20, 24)
    assert y.shape == (16, 3, *out)
    for n, (top, left, h, w) in enumerate(params.tolist()):
        ref = TF.resized_crop(x[n], top, left, h, w, list(out), antialias=True)
        torch.testing.assert_close(y[n], ref, atol=1e-5, rtol=0)  # enlarging and shrinking


def test_rrc_shrinking_antialiases_like_torchvision():
    x = torch.rand(4, 1, 64, 64, generator=gen(3))
    y = ResizedCrop((16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, gen(0))
    torch.testing.assert_close(y, TF.resize(x, [16, 16], antialias=True), atol=1e-5, rtol=0)


# -- color jitter -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ours, theirs, lo, hi",
    [
        (adjust_brightness, TF.adjust_brightness, 0.5, 1.5),
        (adjust_contrast, TF.adjust_contrast, 0.5, 1.5),
        (adjust_saturation, TF.adjust_saturation, 0.0, 2.0),
        (adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_color_ops_match_torchvision_image_by_image(ours, theirs, lo, hi, channels):
    x = batch(12, channels)
    f = lo + torch.rand(12, generator=gen(1)) * (hi - lo)
    y = ours(x, f)
    for n in range(12):
        torch.testing.assert_close(y[n], theirs(x[n], float(f[n])), atol=2e-5, rtol=0)


def test_jitter_per_sample_in_range_and_reproducible():
    x = batch(1).expand(32, -1, -1, -1).contiguous()  # 32 copies of one image
    op = ColorJitter(0.5, 0.5, 0.5, 0.5)
    y = op(x, gen(1))
    assert y.min() >= 0 and y.max() <= 1
    assert len({round(float(v), 5) for v in y.mean(dim=(1, 2, 3))}) == 32  # all different
    assert torch.equal(y, op(x, gen(1)))
    assert not torch.equal(y, op(x, gen(2)))
    assert torch.equal(x, batch(1).expand(32, -1, -1, -1))  # input untouched


def test_jitter_brightness_only_matches_torchvision_factor_range():
    x = torch.full((2000, 1, 2, 2), 0.5)
    y = ColorJitter(brightness=0.4)(x, gen(0))
    f = y[:, 0, 0, 0] / 0.5
    assert f.min() >= 0.6 - 1e-6 and f.max() <= 1.4 + 1e-6
    assert f.min() < 0.62 and f.max() > 1.38


def test_saturation_and_hue_leave_gray_images_alone():
    x = batch(8, 1)
    assert torch.equal(ColorJitter(0, 0, 0.9, 0.5)(x, gen(0)), x)


# -- composition, seeds, spec -----------------------------------------------------------------
def test_same_seed_same_output_different_seed_different():
    aug = parse_augment("hflip,vflip:0.3,crop:2,rrc::0.3-1,jitter:0.4:0.4:0.4:0.1")
    x = batch()
    assert torch.equal(aug(x, gen(11)), aug(x, gen(11)))
    assert not torch.equal(aug(x, gen(11)), aug(x, gen(12)))
    assert aug(x, gen(1)).shape == x.shape


def test_spec_parses_and_round_trips():
    aug = parse_augment(" hflip , vflip:0.25,crop:4,rrc:200:0.1-1:0.5-2,jitter:0.5:0.5:0.5:0.5")
    flip, vflip, crop, rrc, jitter = aug.ops
    assert flip == Flip(-1, 0.5) and vflip == Flip(-2, 0.25) and crop == PadCrop(4)
    assert rrc == ResizedCrop((200, 200), (0.1, 1.0), (0.5, 2.0))
    assert jitter == ColorJitter(0.5, 0.5, 0.5, 0.5)
    assert parse_augment(str(aug)).ops == aug.ops
    assert parse_augment("rrc:32x48").ops[0].size == (32, 48)
    assert parse_augment("crop").ops[0] == PadCrop(4)
    assert parse_augment("jitter:0.3").ops[0] == ColorJitter(0.3)
    assert parse_augment("") is None and parse_augment("none") is None


@pytest.mark.parametrize(
    "spec, part",
    [
        ("hflip,crop:x", "crop:x"),
        ("hflip:2", "hflip:2"),
        ("rrc:0", "rrc:0"),
        ("rrc:32:0.5-0.1", "rrc:32:0.5-0.1"),
        ("rrc:32:0.1-1:0-2", "rrc:32:0.1-1:0-2"),
        ("jitter", "jitter"),
        ("jitter:0.1:0.1:0.1:0.9", "jitter:0.1:0.1:0.1:0.9"),
        ("crop:-1", "crop:-1"),
    ],
)
def test_bad_specs_name_the_bad_part(spec, part):
    with pytest.raises(AugmentSpecError, match=part):
        parse_augment(spec)


def test_unknown_op_lists_known_ones():
    with pytest.raises(UnknownNameError, match="hflip") as e:
        parse_augment("hflip,rotate:10")
    assert "rotate" in str(e.value) and isinstance(e.value, ConvzooError)


def test_works_inside_device_loader_and_resumes_bitwise():
    data = ImageDataset(
        torch.randint(0, 256, (100, 1, 12, 12), dtype=torch.uint8),
        torch.arange(100) % 10,
        [str(i) for i in range(10)],
    )
    loader = DeviceLoader(data, 16, shuffle=True, augment=parse_augment("hflip,crop:2"), seed=3)
    loader.set_epoch(2)
    full = list(loader)
    loader.set_epoch(2, start_step=4)
    resumed = list(loader)
    assert all(torch.equal(a.x, b.x) for a, b in zip(full[4:], resumed))
    assert full[0].x.shape == (16, 1, 12, 12)


def test_augment_grid_is_a_figure_a_notebook_shows_and_writes_nothing(tmp_path, monkeypatch):
    from convzoo.data import augment_grid

    monkeypatch.chdir(tmp_path)
    image = torch.randint(0, 256, (1, 20, 24), dtype=torch.uint8)
    fig = augment_grid(image, "hflip:1", rows=2, cols=3)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 6 and [ax.get_title() for ax in fig.axes][:2] == ["original", "#1"]
    pixels = image[0].float().numpy() / 255
    assert (shown[0] == pixels).all() and (shown[1] == pixels[:, ::-1]).all()  # each flipped
    assert fig._suptitle.get_text() == "hflip:1"
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == []
