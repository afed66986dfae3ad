"""--precision auto and the memory format: chosen on this machine by timing the candidates."""

import io
import json

import pytest
import torch

import convzoo.runtime as runtime
from convzoo.models import create_model
from convzoo.runtime import candidates, choose_execution
from convzoo.train.run import resolve_config, train
from helpers import toy_pair

CPU = torch.device("cpu")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "_MEMO", {})
    return tmp_path / "cache" / "execution.json"


@pytest.mark.parametrize("native", [False, True])
def test_candidates_are_what_was_left_open(monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: native)
    bf16 = [("bf16", False), ("bf16", True)] if native else []
    assert candidates("auto", None, True) == [("fp32", False), ("fp32", True), *bf16]
    assert candidates("fp32", None, True) == [("fp32", False), ("fp32", True)]
    assert candidates("auto", False, True) == [("fp32", False), *bf16[:1]]
    assert candidates("bf16", True, True) == [("bf16", True)]
    # a series has no channels-last layout
    assert candidates("auto", None, False) == [("fp32", False), *bf16[:1]]


def test_the_fastest_is_chosen_and_remembered(fresh_cache, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    rates = {"fp32 NCHW": 900.0, "fp32 channels_last": 1600.0}
    monkeypatch.setattr(runtime, "_time_settings", lambda *a: dict(rates))
    net = create_model("speednet", width=8)
    first = choose_execution(net, (1, 28, 28), CPU)
    assert (first.precision.name, first.channels_last) == ("fp32", True)
    assert "fp32 channels_last 1,600/s" in first.reason and "measured now" in first.reason
    assert json.loads(fresh_cache.read_text()) == {runtime._cache_key(net, (1, 28, 28), [
        ("fp32", False), ("fp32", True)]): rates}  # fmt: skip

    def no_timing(*a):
        raise AssertionError("timed again")

    monkeypatch.setattr(runtime, "_time_settings", no_timing)
    monkeypatch.setattr(runtime, "_MEMO", {})  # another process: the file answers
    again = choose_execution(net, (1, 28, 28), CPU)
    assert again.channels_last and "measured before on this machine" in again.reason
    # another network, input size or set of candidates is measured on its own
    monkeypatch.setattr(
        runtime, "_time_settings", lambda *a: {"fp32 NCHW": 2.0, "fp32 channels_last": 1.0}
    )
    assert not choose_execution(net, (1, 32, 32), CPU).channels_last


def test_a_damaged_cache_is_measured_again(fresh_cache, monkeypatch):
    fresh_cache.parent.mkdir(parents=True)
    fresh_cache.write_text("{not json")
    monkeypatch.setattr(runtime, "_time_settings", lambda m, s, pairs: {
        runtime.label(*p): float(i) for i, p in enumerate(pairs)})  # fmt: skip
    chosen = choose_execution(create_model("speednet", width=8), (1, 16, 16), CPU)
    assert chosen.reason.endswith("; measured now)")
    assert len(json.loads(fresh_cache.read_text())) == 1


def test_nothing_is_timed_when_the_user_chose_both(fresh_cache, monkeypatch):
    monkeypatch.setattr(runtime, "_time_settings", lambda *a: pytest.fail("timed"))
    chosen = choose_execution(create_model("speednet", width=8), (1, 28, 28), CPU, "fp32", False)
    assert chosen.label == "fp32 NCHW" and chosen.reason == "as asked"
    assert not fresh_cache.exists()


def test_calibration_leaves_the_model_the_generators_and_the_threads_alone(fresh_cache):
    net = create_model("speednet", width=8).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    chosen = choose_execution(net, (1, 28, 28), CPU)
    assert chosen.label in chosen.reason  # its own rate is among those shown
    for k, v in net.state_dict().items():  # batch-norm statistics included
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert all(p.grad is None for p in net.parameters())
    assert net.features.b1[0].weight.is_contiguous()  # the model's own memory format is untouched


def test_a_run_says_what_it_chose_and_saves_it_for_resume(fresh_cache, tmp_path):
    cfg = resolve_config(dict(dataset="toy", epochs=1, batch_size=32, device="cpu",
                              model_options={"width": 8}, out=str(tmp_path / "run")))  # fmt: skip
    out = io.StringIO()
    train(cfg, data=toy_pair(64, 32), stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("settings "))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg.precision == "auto" and saved["precision"] in ("fp32", "bf16")
    assert saved["channels_last"] in (True, False)
    want = f"{saved['precision']} {'channels_last' if saved['channels_last'] else 'NCHW'}"
    assert line.startswith(f"settings {want}: fastest of ")


def test_processes_measuring_one_network_at_once_all_keep_the_first_stored(
    fresh_cache, monkeypatch
):
    # two processes measured before either stored: the later one adopts the first's ranking,
    # so a run and its resume (or two workers) never train with different settings
    net = create_model("speednet", width=8)
    monkeypatch.setattr(runtime, "_cached", lambda key: None)  # both missed the cache
    monkeypatch.setattr(
        runtime, "_time_settings", lambda *a: {"fp32 NCHW": 900.0, "fp32 channels_last": 1600.0}
    )
    first = choose_execution(net, (1, 28, 28), CPU, "fp32")
    monkeypatch.setattr(runtime, "_MEMO", {})
    monkeypatch.setattr(
        runtime, "_time_settings", lambda *a: {"fp32 NCHW": 1700.0, "fp32 channels_last": 1600.0}
    )
    second = choose_execution(net, (1, 28, 28), CPU, "fp32")
    assert first.channels_last and second.channels_last and "900/s" in second.reason
