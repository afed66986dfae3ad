"""The process set-up of convzoo.runtime that is not the device or precision."""

import os
import platform
import subprocess
import sys

import pytest

from convzoo.runtime import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

#: a training step's pattern: three 24 MB buffers held together, then all freed; prints the
#: page faults of ten such steps after two to warm up
STEPS = """
import resource, sys, torch
from convzoo.runtime import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for step in range(12):
    if step == 2:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    xs = [torch.ones(6 * 2**20) for _ in range(3)]
    del xs
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_step_memory_is_reused_not_faulted_in_again():
    """Once warm, the steps reuse the heap: fewer page faults in ten steps than one step's
    72 MB has pages (measured 0 or 6,144). glibc's default varies from run to run with the
    address layout: 6,144 or 122,560 (every step faulted in again), so it is not compared."""
    one_step = 3 * 6 * 2**20 * 4 // 4096
    for _ in range(3):
        kept, faults = _faults("keep")
        assert kept and faults < one_step, faults


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_malloc_setting_the_user_exported_wins():
    kept, _ = _faults("keep", MALLOC_ARENA_MAX="2")
    assert not kept


def test_keep_freed_memory_says_whether_it_is_in_effect():
    assert keep_freed_memory() is GLIBC or "MALLOC_" in str(os.environ)
