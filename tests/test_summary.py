import re

import torch

import convzoo
from convzoo.cli import main


def test_alexnet_rows_shapes_params_flops():
    s = convzoo.summary(convzoo.create_model("alexnet"), (1, 224, 224))
    first = s.rows[0]
    assert first.type == "Conv2d" and first.output_shape == (1, 96, 54, 54)
    # conv FLOPs: 2 * C_out * H_out * W_out * C_in * k * k
    assert first.flops == 2 * 96 * 54 * 54 * 1 * 11 * 11
    assert first.params == 96 * 121 + 96
    assert s.output_shape == (1, 10)
    assert s.total_params == s.trainable_params == sum(r.params for r in s.rows if r.depth == 0)
    assert s.flops == sum(r.flops for r in s.rows if r.depth == 0)
    text = str(s)
    assert "1 x 256 x 5 x 5" in text and "46,764,746" in text


def test_nested_blocks_are_expanded_and_depth_limits_them():
    net = convzoo.create_model("googlenet")
    full = convzoo.summary(net, (1, 96, 96))
    top = convzoo.summary(net, (1, 96, 96), depth=0)
    assert any(r.type == "Inception" for r in top.rows)
    assert not any(r.depth > 0 for r in top.rows)
    assert len(full.rows) > len(top.rows)
    assert full.flops == top.flops


def test_frozen_parameters_are_not_trainable_and_mode_is_kept():
    net = convzoo.create_model("lenet").train()
    for p in net.features.parameters():
        p.requires_grad_(False)
    s = convzoo.summary(net, (1, 28, 28))
    assert s.trainable_params < s.total_params
    assert net.training


def test_works_on_meta_models():
    with torch.device("meta"):
        net = convzoo.create_model("vgg11")
    s = convzoo.summary(net, (1, 224, 224))
    assert s.total_params == 128_806_154 and s.flops > 15e9


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    # in this process: a subprocess per command spent 2-3 s importing torch, 15 s of the
    # suite; `python -m convzoo models` itself runs as a subprocess in test_models1d.py
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_models_lists_every_model(capsys):
    code, out, err = run_cli(capsys, "models")
    assert code == 0, err
    for name in convzoo.list_models():
        assert name in out
    assert "61,706" in out  # LeNet's parameters


def alexnet_flops_by_hand() -> int:
    """The book's AlexNet at 224 px, counted from its layers: 2 FLOPs per multiply-add of each
    conv (C_out x H_out x W_out x C_in x k x k) and linear layer (in x out)."""
    convs = [  # C_in, C_out, k, output side (224 -> 54 -> pool 26 -> 26 -> pool 12 -> 12 ...)
        (1, 96, 11, 54), (96, 256, 5, 26), (256, 384, 3, 12), (384, 384, 3, 12),
        (384, 256, 3, 12),
    ]  # fmt: skip
    linears = [(256 * 5 * 5, 4096), (4096, 4096), (4096, 10)]
    return sum(2 * co * side * side * ci * k * k for ci, co, k, side in convs) + sum(
        2 * i * o for i, o in linears
    )


def test_cli_summary_alexnet(capsys):
    code, out, err = run_cli(capsys, "summary", "alexnet", "--input-size", "1,224,224")
    assert code == 0, err
    flops = alexnet_flops_by_hand()
    assert convzoo.summary(convzoo.create_model("alexnet"), (1, 224, 224)).flops == flops
    assert "1 x 96 x 54 x 54" in out and f"forward GFLOPs/image: {flops / 1e9:.4f}" in out


def test_cli_user_errors_are_one_line(capsys):
    for args in (
        ["summary", "alexnett"],
        ["summary", "alexnet", "--input-size", "1,32,32"],
        ["summary", "vgg11", "-o", "stem=small"],
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_a_notebook_shows_the_summary_as_an_html_table():
    s = convzoo.summary(convzoo.create_model("googlenet"), (1, 96, 96), depth=1)
    page = s._repr_html_()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(rows) == 1 + len(s.rows) + 4  # the head, a row per layer, the totals
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]
    assert cells[0] == list(s.HEAD)
    nested = next(r for r in s.rows if r.depth == 1)
    row = cells[1 + s.rows.index(nested)]
    assert row[0] == "&nbsp;" * 4 + nested.name and row[1] == nested.type
    assert row[2] == " x ".join(map(str, nested.output_shape)) and row[3] == f"{nested.params:,}"
    assert cells[-4][0] == "<b>total parameters</b>" and cells[-4][3] == f"{s.total_params:,}"
    assert "googlenet, input 1 x 1 x 96 x 96" in page
