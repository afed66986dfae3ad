"""Where a network is cut for model and pipeline parallelism, and ``convzoo summary --split``."""

import itertools

import pytest
import torch

import convzoo
from convzoo.cli import main as cli_main
from convzoo.errors import ParallelError
from convzoo.parallel.split import balance, part_costs, plan_split
from convzoo.summary import summary


def _meta(name, **kw):
    with torch.device("meta"):
        return convzoo.create_model(name, **kw)


def _brute_force(costs, n):
    """The smallest largest group sum over every way to cut ``costs`` into ``n`` groups."""
    k = len(costs)
    best = None
    for starts in itertools.combinations(range(1, k), n - 1):
        bounds = [0, *starts, k]
        worst = max(sum(costs[a:b]) for a, b in itertools.pairwise(bounds))
        best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize(
    "costs", [[5, 1, 1, 1, 9], [1, 2, 3, 4, 5, 6], [7, 7, 7, 7], [0, 0, 3], [10, 1, 1, 1, 1, 1]]
)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_balance_finds_the_smallest_largest_group(costs, n):
    if n > len(costs):
        return
    starts = balance(costs, n)
    assert len(starts) == n - 1 and starts == sorted(set(starts))
    bounds = [0, *starts, len(costs)]
    assert all(b > a for a, b in itertools.pairwise(bounds))  # no empty group
    assert max(sum(costs[a:b]) for a, b in itertools.pairwise(bounds)) == _brute_force(costs, n)


@pytest.mark.parametrize(
    "name, size",
    [("speednet", (1, 28, 28)), ("resnet18", (1, 96, 96)), ("tv_resnet18", (1, 64, 64)),
     ("fcn1d", (1, 150)), ("resnet1d", (1, 64))],
)  # fmt: skip
def test_part_costs_add_up_to_the_whole_model(name, size):
    model = _meta(name)
    costs = part_costs(model, size)
    whole = summary(model, size, depth=0)
    assert [c.name for c in costs] == [n for n, _ in model.parts]
    assert sum(c.params for c in costs) == whole.total_params
    assert sum(c.flops for c in costs) == whole.flops
    assert costs[-1].output_shape == (10,) and costs[-1].output_bytes == 4


def test_plan_cuts_speednet_where_flops_balance():
    plan = plan_split(_meta("speednet"), (1, 28, 28), 2)
    # b1+b2: 7.7 MFLOPs, b3+b4+head: 9.9 (b1..b3 | b4, head would be 14.9 | 2.7)
    assert [g.names for g in plan.groups] == [["b1", "b2"], ["b3", "b4", "head"]]
    assert plan.starts == ["b3"] and plan.chosen_by == "forward FLOPs"
    first = plan.groups[0]
    assert first.sends == (64, 7, 7) and first.send_elements == 3136
    assert first.send_bytes == 3136 * 4
    table = plan.table(["cpu", "cpu"])
    assert "--split-at b3" in table and "64 x 7 x 7 = 3,136 values, 12.2 KiB" in table


def test_split_at_overrides_the_balance():
    plan = plan_split(_meta("vgg11"), (1, 224, 224), 2, split_at="head")
    assert [g.names for g in plan.groups] == [["b1", "b2", "b3", "b4", "b5"], ["head"]]
    assert plan.chosen_by == "--split-at"
    assert plan.groups[1].params > 10 * plan.groups[0].params  # the head holds most


@pytest.mark.parametrize(
    "n, split_at, match",
    [
        (6, None, "speednet has 5 parts (b1, b2, b3, b4, head) and cannot be split over 6"),
        (2, "b9", "speednet has no part b9; its parts are b1, b2, b3, b4, head"),
        (3, "b3", "cuts speednet into 2 parts, not 3"),
        (3, "b4,b2", "in the network's order"),
        (2, "b1", "nothing comes before b1"),
    ],
)
def test_bad_splits_are_one_line(n, split_at, match):
    with pytest.raises(ParallelError, match=match.replace("(", r"\(").replace(")", r"\)")) as e:
        plan_split(_meta("speednet"), (1, 28, 28), n, split_at)
    assert "\n" not in str(e.value)


def test_summary_split_prints_the_cut(capsys):
    assert cli_main(["summary", "resnet18", "--parts", "2", "--input-size", "1,64,64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resnet18 in 2 parts, cut by forward FLOPs (input 1 x 64 x 64")
    assert "b1, b2" in out and "sends per example" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--parts", "9"], "cannot be split over 9 devices"),
        (["--parts", "2", "--split-at", "b7"], "has no part b7"),
        (["--split-at", "b2"], "--split-at needs --parts N"),
    ],
)
def test_summary_split_errors_are_one_line(argv, match, capsys):
    assert cli_main(["summary", "speednet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convzoo: error:") and err.count("\n") == 1 and match in err
