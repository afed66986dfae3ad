"""``--strategy pipeline`` on two gloo processes under torchrun (tests/pipeline_job.py): the
same training as one device without batch norm, per-micro-batch batch norm as documented,
exact resume, one whole saved model written by rank 0 alone, one-line errors, every family."""

import io
import json
from pathlib import Path

import pytest
import torch

from convzoo.cli import main as cli_main
from convzoo.io import load_weights
from convzoo.parallel.pipeline import bubble
from convzoo.train import train
from convzoo.trained import evaluate, load_model
from helpers import run_torchrun, toy_pair, write_image_folder
from pipeline_job import BN_NET
from test_model_parallel import _cfg
from zoo_families import FAMILIES

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


def torchrun(report: Path, *scenarios: str, env: dict | None = None) -> dict:
    """The scenarios in one launch of two processes; rank r's report of each, by name."""
    report.mkdir(parents=True, exist_ok=True)
    job = TESTS / "pipeline_job.py"
    run_torchrun(job, str(report), *scenarios, cwd=report, env=env, timeout=400)
    return {
        name: [json.loads((report / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]
        for name in scenarios
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = write_image_folder(tmp_path_factory.mktemp("images"), 16, 8, size=28)
    return torchrun(
        tmp_path_factory.mktemp("pipeline"),
        *("plain", "bn", "bn1f1b", "resume", "badsplit"),
        env={"PIPELINE_JOB_FOLDER": str(folder)},
    )


def _one_process(**kw):
    return train(_cfg(**kw), data=toy_pair(200, 40), save=False, stdout=io.StringIO())


def _weights(report: dict) -> dict:
    return load_weights(Path(report["run_dir"]) / "model.safetensors")[0]


def _assert_close(weights: dict, expected: dict) -> None:
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_bubble_is_gpipes():
    assert bubble(2, 4) == pytest.approx(1 / 5) and bubble(4, 4) == pytest.approx(3 / 7)


@pytest.mark.slow
def test_pipeline_without_batch_norm_trains_like_one_device(runs):
    one = _one_process()
    rank0, rank1 = runs["plain"]
    _assert_close(_weights(rank0), one.model.state_dict())  # gathered from both stages
    for rep in (rank0, rank1):  # the last stage's losses and logits reach every process
        assert rep["history"][0]["loss"] == pytest.approx(one.history.records[0]["loss"], 1e-5)
        assert rep["metrics"] == {"test_acc": one.metrics["test_acc"], "test_examples": 40}
    assert rank1["writes"] == []  # only rank 0 writes
    # model.safetensors is one ordinary model: it loads and evaluates on one device
    model = load_model(rank0["run_dir"])
    out = evaluate(model, toy_pair(200, 40)[1], device="cpu")
    assert out.acc == pytest.approx(one.metrics["test_acc"])


@pytest.fixture(scope="module")
def bn_references():
    """Speednet on one process: with 4 micro-batches a batch, and with whole batches."""
    staged = _one_process(strategy="model", devices="cpu", microbatches=4, **BN_NET)
    return staged.model.state_dict(), _one_process(**BN_NET).model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["bn", "bn1f1b"])
def test_pipeline_batch_norm_is_per_micro_batch_as_documented(runs, scenario, bn_references):
    # documented: the same training as --strategy model with the same micro-batches, which
    # test_model_parallel checks against gradient accumulation over the micro-batches
    staged, whole = bn_references  # whole: one device, whole-batch statistics
    weights = _weights(runs[scenario][0])
    _assert_close(weights, staged)
    mean = next(k for k in whole if k.endswith("running_mean"))
    assert not torch.allclose(weights[mean], whole[mean], rtol=1e-3, atol=1e-4)
    tracked = next(k for k in whole if k.endswith("num_batches_tracked"))
    # one update per micro-batch in training: 3 more than one device in each of the 7 steps
    # (the batch-norm refresh of young runs adds the same whole-batch updates to both)
    assert int(weights[tracked]) - int(whole[tracked]) == 3 * 7


@pytest.mark.slow
def test_pipeline_resumes_mid_epoch_bitwise(runs):
    rank0 = runs["resume"][0]
    assert rank0["resumed_at"] == [1, 2]  # epoch 2, step 2: in the middle of an epoch
    a, b = _weights(rank0["full"]), _weights(rank0["resumed"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    full, resumed = rank0["full"]["history"], rank0["resumed"]["history"]
    assert [r["loss"] for r in full] == [r["loss"] for r in resumed]


@pytest.mark.slow
def test_pipeline_bad_split_is_one_line_on_every_process(runs):
    for rep in runs["badsplit"]:
        assert rep["rc"] == 2
        err = rep["stderr"]
        assert err.count("\n") == 1 and err.startswith("convzoo: error: --split-at b9: speednet")


def test_pipeline_without_torchrun_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert cli_main(["train", "--strategy", "pipeline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torchrun --nproc-per-node 2" in err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--pipeline-schedule", "1f1b"], "--pipeline-schedule is the schedule of"),
        (["--strategy", "pipeline", "--grad-clip", "1"], "cannot clip gradients"),
        (["--strategy", "pipeline", "--microbatches", "0"], "microbatches must be >= 1"),
    ],
)
def test_bad_pipeline_settings_are_one_line(argv, match, capsys):
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err


@pytest.mark.slow
def test_pipeline_trains_every_family(tmp_path):
    ((rank0, rank1),) = torchrun(tmp_path, "families").values()
    assert set(rank0) - {"writes"} == set(FAMILIES)
    for family in FAMILIES:
        for rep in (rank0, rank1):
            assert torch.isfinite(torch.tensor(rep[family]["history"][0]["loss"])), family
        weights = _weights(rank0[family])  # the whole network, both stages' parameters
        model = load_model(rank0[family]["run_dir"])
        assert weights.keys() == model.state_dict().keys()
    assert rank1["writes"] == []
