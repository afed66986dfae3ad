"""The soak suite's pieces stay working: its malicious payloads are each refused in-process
(fast), its mutations are seeded, and a few dozen fuzz cases run end to end (slow). The full
suite is ``make soak`` (benchmarks/soak/), with its figures in benchmarks/RESULTS.md."""

import random
import sys
from pathlib import Path

import pytest

from convzoo.errors import CheckpointError
from convzoo.io import load_checkpoint, load_state_dict_file, load_weights

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak"
sys.path.insert(0, str(SOAK))

import malicious  # noqa: E402
import mutate  # noqa: E402


@pytest.mark.parametrize("kind", list(malicious.payloads(Path("/nonexistent/marker"))))
def test_every_malicious_kind_is_refused_saying_why_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "MARKER"
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(malicious.payloads(marker)[kind])
    for load in (load_checkpoint, load_state_dict_file, load_weights):
        with pytest.raises(CheckpointError) as e:
            load(path)
        message = str(e.value)
        assert str(path) in message and "\n" not in message
        assert malicious.says_why(message, kind), message
    assert not marker.exists()


@pytest.mark.parametrize(
    "kind, name",
    [
        ("os.system in a checkpoint", "GLOBAL posix.system"),
        ("subprocess.Popen", "GLOBAL commands.Popen"),  # protocol 0's Python 2 name
        ("builtins.getattr chain", "GLOBAL getattr"),
        ("protocol 5 (STACK_GLOBAL, memo)", "Unsupported operand 149"),
        ("torch's legacy format", "GLOBAL posix.system"),
    ],
)
def test_the_refusal_gives_torchs_reason_without_its_advice(tmp_path, kind, name):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(malicious.payloads(tmp_path / "MARKER")[kind])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert name in message and "\n" not in message
    assert "weights_only=False" not in message and "add_safe_globals" not in message


def test_mutations_are_seeded():
    data = bytes(range(256)) * 40
    a = mutate.byte_mutation(data, random.Random("s-1"))
    b = mutate.byte_mutation(data, random.Random("s-1"))
    assert a == b and a[1] != data


@pytest.mark.slow
def test_fuzz_smoke(tmp_path):
    import fuzz

    part = fuzz.main(["--cases", "24", "--compare", "2", "--work", str(tmp_path)])
    assert part.failures == [] and part.cases == 25
    assert part.notes["compare"]["agree"] == 2
