"""``convzoo reproduce`` running cells as a user does: the smoke profile end to end, then
started again (nothing retrained). Killed mid-cell: ``test_reproduce_kill.py`` (its own module,
so that the two minute-long tests can run on different pytest-xdist workers).

Synthetic Fashion-MNIST files (random images) stand in for the real ones: these tests check the
plumbing, not accuracy."""

import subprocess
import sys

import pytest

from convzoo.cli import main
from data_files import fake_fashion_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return fake_fashion_env(tmp_path_factory.mktemp("data"))


def cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "convzoo", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_the_smoke_profile_end_to_end_and_started_again(env, tmp_path, capsys):
    out = tmp_path / "smoke"
    smoke = ["reproduce", "--profile", "smoke", "--device", "cpu", "--out", out]
    # LeNet's two cells in this process (--in-process), then the table with 2 jobs at once
    # (LeNet-BN's two cells, each its own process), then again: nothing left to train
    r = cli(env, *smoke, "--models", "lenet", "--in-process")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "[reproduce smoke] 0/2 cells done, 2 left, about" in r.stdout
    assert "all 2 cells done" in r.stdout and f"report: {out}/report.md" in r.stdout
    r = cli(env, *smoke, "--jobs", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert r.stdout.count("already done, skipped") == 2 and "all 4 cells done" in r.stdout
    cells = ["lenet-d2l-s0", "lenet-fast-s0", "lenet_bn-d2l-s0", "lenet_bn-fast-s0"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(cells)
    stamps = {c: (out / "runs" / c / "metrics.json").stat().st_mtime_ns for c in cells}
    report = (out / "report.md").read_text()
    assert all(f"| {c} |" in report for c in cells)
    again = cli(env, *smoke)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already done, skipped") == 4
    assert stamps == {c: (out / "runs" / c / "metrics.json").stat().st_mtime_ns for c in cells}
    # refused before any data is read: in this process, two interpreter starts fewer
    capsys.readouterr()
    assert main(["reproduce", "--profile", "cpu", "--out", str(out), "--models", "lenet"]) == 2
    assert "holds the 'smoke' profile's table" in capsys.readouterr().err
    assert main([*map(str, smoke), "--jobs", "2", "--in-process"]) == 2
    assert "--jobs" in capsys.readouterr().err
