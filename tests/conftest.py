import os
import tempfile

import pytest
import torch

# the settings a run measures (convzoo.runtime.choose_execution) are kept out of the user's cache
os.environ.setdefault("CONVZOO_CACHE", tempfile.mkdtemp(prefix="convzoo-test-cache-"))

# Small, reproducible runs on 2 cores: never let a test spawn more threads than cores. Under
# pytest-xdist (`make test` runs one worker per core) each worker gets one thread of its own.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
