"""The ``convzoo`` command's process set-up (cli/_allocator.py), and that the library leaves a
user's process as it is."""

import os
import platform
import subprocess
import sys

import pytest

from convzoo.cli._allocator import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

#: a training step's buffer of 24 MB, freed: prints whether the feature is on and how many
#: bytes of resident memory the free gave back to the system
STEP = """
import os, sys, torch
from convzoo.cli._allocator import keep_freed_memory
from convzoo.runtime import tune_backends
tune_backends(torch.device("cpu"))  # what convzoo.fit sets up in a user's process
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
x = torch.ones(6 * 2**20)
held = rss()
del x
print(kept, held - rss())
"""


def _returned(mode: str, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", STEP, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_step_memory_is_kept_for_the_next_step():
    """With the feature a freed 24 MB buffer stays in the heap for the next step to reuse (none
    of it given back, so nothing to fault in again); without it glibc maps such a first buffer
    on its own and unmaps it when freed: all 24 MB given back, every time."""
    assert _returned("keep") == (True, 0)
    kept, returned = _returned("default")  # the library alone changes nothing
    assert not kept and returned >= 24 * 2**20


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_malloc_setting_the_user_exported_wins():
    kept, _ = _returned("keep", MALLOC_ARENA_MAX="2")
    assert not kept


def test_keep_freed_memory_says_whether_it_is_in_effect():
    assert keep_freed_memory() is GLIBC or "MALLOC_" in str(os.environ)
