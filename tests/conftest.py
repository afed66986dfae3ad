import os

import pytest
import torch

# Small, reproducible runs on 2 cores: never let a test spawn more threads than cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
