"""Smoke runs of the benchmark scripts (a few batches, one epoch) so that they keep working.

No timing is asserted: the figures live in benchmarks/RESULTS.md, measured by the full runs.
They need the real Fashion-MNIST, which CI installs.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not FMNIST.exists(), reason="needs the Debian dataset-fashion-mnist"),
]
BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_speedrun_smoke():
    (run,) = load("speedrun").main(["--smoke", "--thresholds", "0.5"])
    assert 0.5 < run["final_acc"] <= 1 and run["reached_s"]["0.50"] is not None
    assert run["reached_s"]["0.50"] <= run["total_s"]


def test_bench_train_smoke_through_the_cli(capsys, tmp_path):
    # `convzoo bench` runs benchmarks/bench_train.py itself: one smoke run checks both (they
    # were two tests of 13 s each, three fresh processes a run)
    from convzoo.cli import main

    assert main(["bench", "--smoke", "--models", "lenet", "--json", str(tmp_path / "b.json")]) == 0
    (row,) = json.loads((tmp_path / "b.json").read_text())
    assert row["case"]["model"] == "lenet"
    for side in ("reference", "fp32", "auto"):
        assert row[side]
    assert row["reference"]["examples_per_sec_wall"] > 0
    assert row["auto"]["examples_per_sec"] > 0 and math.isfinite(row["ratio"])
    assert row["auto"]["gflops_per_sec"] > 0
    assert "lenet" in capsys.readouterr().out
