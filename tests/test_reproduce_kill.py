"""``convzoo reproduce`` killed with SIGKILL mid-cell, then started again: the cut cell resumes
from its checkpoint, the finished one is skipped, no cell is left training alone.

Synthetic Fashion-MNIST files (random images) stand in for the real ones: this checks the
plumbing, not accuracy."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_files import fake_fashion_env

pytestmark = pytest.mark.slow

DRIVER = r"""
import sys
from convzoo.reproduce import Budget, Cell, Profile, run_cells
cells = [
    Cell("lenet", "d2l", 0, Budget(epochs=1, shots=20)),
    Cell("lenet_bn", "fast", 0, Budget(epochs=5, shots=300)),
]
profile = Profile("smoke", "test", ("lenet", "lenet_bn"))
failed = run_cells(profile, cells, sys.argv[1], device="cpu")
sys.exit(1 if failed else 0)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return fake_fashion_env(tmp_path_factory.mktemp("data"))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_reproduce_goes_on_where_it_stopped(env, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    for attempt in range(3):  # a kill that comes after the cell has finished is retried
        out = tmp_path / f"table{attempt}"
        cut = out / "runs" / "lenet_bn-fast-s0"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 300
        while not (cut / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.005)
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
        if not (cut / "metrics.json").exists():
            break
    assert not (cut / "metrics.json").exists(), "every cell finished before its kill"
    # the cell's own process stops at its next output line (a closed pipe); none is left
    # training in the background
    deadline = time.time() + 30
    while _processes_mentioning(str(cut)) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_mentioning(str(cut))
    first = out / "runs" / "lenet-d2l-s0" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    r = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "lenet-d2l-s0: already done, skipped" in r.stdout
    assert "resuming lenet_bn fast seed 0" in r.stdout
    assert first.stat().st_mtime_ns == stamp  # never trained again
    log = (out / "logs" / "lenet_bn-fast-s0.log").read_text()
    assert log.count("\n== ") + log.startswith("== ") == 2 and "resuming" in log
    assert json.loads((cut / "metrics.json").read_text())["epochs_done"] == 5
    state = json.loads((out / "reproduce.json").read_text())
    assert state["cells"]["lenet_bn-fast-s0"]["status"] == "done"
    assert len(state["invocations"]) == 2
