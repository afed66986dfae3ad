"""Data parallelism: the chapter's functions, the from-scratch strategy, DDP under torchrun."""

import io
import json
import subprocess
from pathlib import Path

import pytest
import torch

import convzoo
from convzoo.cli import main as cli_main
from convzoo.data import Batch, DeviceLoader, ImageDataset
from convzoo.errors import ParallelError
from convzoo.io import load_checkpoint, load_weights
from convzoo.models import create_model
from convzoo.parallel import ScratchStrategy, allreduce, get_params, split_batch
from convzoo.parallel.ddp import check_sync_bn
from convzoo.train import Callback, Trainer
from convzoo.train.run import train
from ddp_job import SMALL_VGG, job_config, job_data
from helpers import run_torchrun, toy_pair

CPU = torch.device("cpu")
TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


# -- the chapter's functions ----------------------------------------------------------------
def test_allreduce_sums_onto_the_first_and_broadcasts_in_place():
    data = [torch.full((2, 3), float(i + 1)) for i in range(3)]
    same = list(data)
    allreduce(data)
    for t, s in zip(data, same):
        assert t is s  # in place: a device's .grad itself holds the sum
        assert torch.equal(t, torch.full((2, 3), 6.0))


def test_split_batch_cuts_like_nn_parallel_scatter():
    X = torch.arange(20).reshape(4, 5)
    y = torch.arange(4)
    xs, ys = split_batch(X, y, [CPU, CPU])
    assert [x.tolist() for x in xs] == [X[:2].tolist(), X[2:].tolist()]
    assert [t.tolist() for t in ys] == [[0, 1], [2, 3]]
    # torch.chunk sizes, as nn.parallel.scatter: 5 rows on 3 devices -> 2, 2, 1
    xs, _ = split_batch(torch.arange(5), torch.arange(5), [CPU] * 3)
    assert [len(x) for x in xs] == [2, 2, 1]
    with pytest.raises(ValueError, match="labels"):
        split_batch(X, torch.arange(3), [CPU, CPU])


def test_get_params_gives_leaves_with_their_own_gradients():
    params = [torch.randn(3, requires_grad=True), torch.randn(2, 2)]
    copies = get_params(params, CPU)
    assert all(c.is_leaf and c.requires_grad for c in copies)
    assert all(torch.equal(c, p) and c is not p for c, p in zip(copies, params))
    (copies[0] * 2).sum().backward()
    assert torch.equal(copies[0].grad, torch.full((3,), 2.0)) and params[0].grad is None


# -- the from-scratch strategy --------------------------------------------------------------
def _trainer(strategy=None) -> Trainer:
    torch.manual_seed(0)
    model = create_model("vgg11", num_classes=4, **SMALL_VGG)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, None, optimizer=opt, strategy=strategy)


@pytest.mark.parametrize("k", [2, 3])
def test_shard_gradients_allreduced_equal_the_full_batch_gradient(k):
    data = toy_pair(13, 1)[0]  # 13 samples: uneven shards (7+6, 5+5+3)
    x, y = data.images.float() / 255, data.labels
    batch = Batch(x, y, len(y), len(y))
    one, many = _trainer(), _trainer(ScratchStrategy([CPU] * k))
    losses1, logits1 = one.strategy.forward_backward(
        one.net, batch, one.loss_fn, one.precision, one.scaler
    )
    losses_k, logits_k = many.strategy.forward_backward(
        many.net, batch, many.loss_fn, many.precision, many.scaler
    )
    torch.testing.assert_close(losses_k, losses1)
    torch.testing.assert_close(logits_k, logits1)
    for (name, p1), pk in zip(one.model.named_parameters(), many.model.parameters()):
        torch.testing.assert_close(pk.grad, p1.grad, rtol=1e-5, atol=1e-7, msg=name)
    for replica in many.strategy.replicas[1:]:  # allreduce broadcast the sum to every device
        for pr, pk in zip(replica.parameters(), many.model.parameters()):
            assert torch.equal(pr.grad, pk.grad)


@pytest.fixture(scope="module")
def one_device_vgg():
    return _fit_small_vgg()


def _fit_small_vgg(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("vgg11", num_classes=4, **SMALL_VGG)
    convzoo.fit(
        model,
        toy_pair(200, 40),  # 200 = 6 x 32 + 8: a short last batch too
        epochs=2,
        batch_size=32,
        lr=0.05,
        optimizer="nesterov",  # the fast recipe gives BN-free nets AdamW; compare plain steps
        precision="fp32",
        image_size=16,
        augment="",
        drop_last=False,
        device="cpu",
        verbose=False,
        **kw,
    )
    return model


@pytest.mark.parametrize("devices", ["cpu,cpu", "cpu,cpu,cpu"])
def test_scratch_training_matches_one_device(devices, one_device_vgg):
    model = _fit_small_vgg(strategy="scratch", devices=devices)
    expected = one_device_vgg.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-6, msg=name)


class ReplicasInSync(Callback):
    """After every step's forward and backward: each replica has the master's parameters (given
    at the step's start) and the same, allreduced, gradients; the running statistics are given
    to the replicas again at the next step's start."""

    def on_fit_start(self, trainer):
        strategy, self.steps = trainer.strategy, 0
        real_step, real_sync = strategy.forward_backward, strategy.sync_replicas

        def step(*args, **kwargs):
            out = real_step(*args, **kwargs)
            master, *others = strategy.replicas
            for other in others:
                for (name, p), q in zip(master.named_parameters(), other.parameters()):
                    assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name
            assert any(p.grad.abs().sum() > 0 for p in master.parameters())
            self.steps += 1
            return out

        def sync():
            real_sync()
            master, *others = strategy.replicas
            for other in others:
                for a, b in zip(master.buffers(), other.buffers()):
                    assert torch.equal(a, b)

        strategy.forward_backward, strategy.sync_replicas = step, sync


def test_scratch_trains_a_batch_norm_model_and_keeps_replicas_in_sync(tmp_path):
    check = ReplicasInSync()
    result = train(
        job_config(
            model="lenet_bn",
            model_options={"norm": "torch"},
            strategy="scratch",
            devices="cpu,cpu",
            batch_size=32,
            epochs=1,
            out=str(tmp_path / "run"),
        ),
        data=toy_pair(64, 16),
        callbacks=[check],
        stdout=io.StringIO(),
    )
    assert check.steps == 2  # 64 images, batches of 32: every step was checked
    assert result.history.last["loss"] < 2 and load_checkpoint(result.run_dir / "checkpoint.pt")


# -- sharding: every sample exactly once per epoch ------------------------------------------
def _indexed(n: int) -> ImageDataset:
    """Image i holds its own index in its two pixels, so a batch tells which samples it has."""
    idx = torch.arange(n)
    images = torch.stack([idx // 256, idx % 256], 1).view(n, 1, 1, 2).to(torch.uint8)
    return ImageDataset(images, idx % 3, ["a", "b", "c"])


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sharded_loader_serves_every_sample_once_per_epoch(world_size, shuffle):
    data = _indexed(23)  # 23 = 2 steps of 4 x 3 - 1: short and padded last steps
    loaders = [
        DeviceLoader(data, 4, shuffle=shuffle, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    for epoch in (0, 1):
        seen = []
        per_rank = []
        for loader in loaders:
            loader.set_epoch(epoch)
            batches = list(loader)
            per_rank.append([(len(b.y), b.global_valid) for b in batches])
            for b in batches:
                ids = (b.x[: b.valid].view(-1, 2) * 255).round().long()
                seen += (ids[:, 0] * 256 + ids[:, 1]).tolist()
        assert sorted(seen) == list(range(23))
        assert all(steps == per_rank[0] for steps in per_rank)  # same steps and widths


# -- bad setups: one clear line each ---------------------------------------------------------
@pytest.mark.parametrize(
    "argv, match",
    [
        (["--strategy", "dp"], "has none; use --strategy single --device cpu"),
        (["--strategy", "scratch", "--devices", "cpu,cuda:3"], "names cuda:3, but this machine"),
        (["--strategy", "scratch", "--devices", "cpu,tpu"], "unknown device 'tpu'"),
        (["--strategy", "scratch"], "needs --devices"),
        (["--strategy", "ddp"], "torchrun --nproc-per-node"),
        (["--devices", "cpu,cpu"], "--strategy scratch or dp"),
        (["--sync-bn"], "needs --strategy ddp"),
        (["--auto-resume"], "needs --out"),
    ],
)
def test_bad_parallel_setups_are_one_line(argv, match, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convzoo: error:") and err.count("\n") == 1, err
    assert match in err


def test_dp_with_one_gpu_trains_unwrapped_after_a_notice(monkeypatch, capsys):
    from convzoo.parallel import DataParallelStrategy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    strategy = DataParallelStrategy.build(torch.device("cuda"))
    assert strategy.device == torch.device("cuda", 0)
    model = torch.nn.Linear(2, 2)
    assert strategy.wrap(model) is model
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one GPU (cuda:0): training on it alone" in err


def test_sync_bn_on_the_cpu_and_on_scratch_batch_norm_is_refused(monkeypatch):
    from convzoo.parallel.ddp import DistributedStrategy

    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ParallelError, match="SyncBatchNorm runs on CUDA only"):
        DistributedStrategy(CPU, sync_bn=True)
    with pytest.raises(ParallelError, match=r"convzoo\.BatchNorm"):
        check_sync_bn(create_model("lenet_bn"))
    check_sync_bn(create_model("lenet_bn", norm="torch"))


def test_mid_epoch_checkpoint_of_another_world_size_is_refused():
    trainer = _trainer()
    trainer.train_loader = DeviceLoader(toy_pair(8, 1)[0], 4, image_size=16)
    trainer.fit(1)
    state = trainer.state_dict()
    assert state["world_size"] == 1
    state.update(step=3, world_size=2)
    with pytest.raises(ParallelError, match=r"middle of epoch 2.*resume with 2 process"):
        _trainer().load_state_dict(state)
    state.update(step=0)  # at an epoch boundary another world size is fine
    _trainer().load_state_dict(state)


# -- DDP: two gloo processes under torchrun --------------------------------------------------
@pytest.fixture(scope="module")
def one_process_run():
    """The same job in one process with the same global batch (2 x 16)."""
    cfg = job_config(batch_size=32, eval_batch_size=32)
    return train(cfg, data=job_data(), save=False, stdout=io.StringIO())


def torchrun(report: Path, *args: str, cwd: Path, restarts: int = 0) -> subprocess.CompletedProcess:
    report.mkdir(parents=True, exist_ok=True)
    out = run_torchrun(TESTS / "ddp_job.py", str(report), *args, cwd=cwd, restarts=restarts)
    return subprocess.CompletedProcess([], 0, out)


def _reports(report: Path) -> list[dict]:
    return [json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1)]


def _assert_same_training(run_dir: Path, reports: list[dict], expected) -> None:
    weights, _ = load_weights(run_dir / "model.safetensors")
    for name, value in expected.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-6, msg=name)
    for rep in reports:  # epoch metrics reduced over ranks: the same figures on every rank
        for got, want in zip(rep["history"], expected.history.records):
            for key in ("loss", "train_acc", "test_loss", "test_acc"):
                assert got[key] == pytest.approx(want[key], rel=1e-5), key
        # evaluation is exact despite the padded shards: every test image counted once
        assert rep["metrics"]["test_examples"] == 61
        assert rep["metrics"]["test_acc"] == pytest.approx(expected.metrics["test_acc"])


@pytest.mark.slow
def test_ddp_two_processes_match_one_process_and_only_rank_0_writes(tmp_path, one_process_run):
    work = tmp_path / "work"
    work.mkdir()
    torchrun(tmp_path / "report", "--spy", cwd=work)  # no --out: rank 0 names the directory
    reports = _reports(tmp_path / "report")
    (run_dir,) = (work / "runs").iterdir()
    assert reports[0]["run_dir"] == reports[1]["run_dir"] == str(run_dir.resolve())
    assert reports[1]["writes"] == []
    for name in ("config.json", "checkpoint.pt", "history.csv", "metrics.json", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert load_checkpoint(run_dir / "checkpoint.pt")["trainer"]["world_size"] == 2
    _assert_same_training(run_dir, reports, one_process_run)


@pytest.mark.slow
def test_ddp_rank_killed_under_max_restarts_resumes_and_completes(tmp_path, one_process_run):
    run_dir = tmp_path / "run"
    # 7 steps an epoch, a checkpoint every 3: rank 1 dies at step 11, the group restarts and
    # resumes mid-epoch 2 from the checkpoint of step 9
    out = torchrun(
        tmp_path / "report",
        *("--out", str(run_dir), "--auto-resume", "--kill-at", "11"),
        cwd=tmp_path,
        restarts=2,
    ).stdout
    assert (tmp_path / "report" / "killed").exists()
    assert f"resuming {run_dir / 'checkpoint.pt'} at epoch 2, step 2" in out
    reports = _reports(tmp_path / "report")
    # one restart, or more where a restarted group itself lost a rank on a loaded machine
    restarts = {r["restart"] for r in reports}
    assert len(restarts) == 1 and min(restarts) >= 1, out
    _assert_same_training(run_dir, reports, one_process_run)


@pytest.mark.parametrize(
    ("agent_store", "nodes", "prefixed", "warned"),
    [("True", "1", True, False), ("True", "2", True, True), ("False", "2", False, False)],
)
def test_store_prefix_only_on_the_agents_shared_store(
    monkeypatch, capsys, agent_store, nodes, prefixed, warned
):
    """torchrun's shared store outlives a restart, so attempts get a prefix there; a store of its
    own per round (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1) must not get one: agents count restarts
    differently (a failure vs a change of members), and a prefix of the count hung a lost node's
    return in the soak suite."""
    import torch.distributed as dist

    from convzoo.parallel import ddp

    base = dist.HashStore()
    monkeypatch.setattr(dist, "rendezvous", lambda url, timeout: iter([(base, 0, 2)]))
    seen = {}
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: seen.update(k))
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", agent_store)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    monkeypatch.setenv("GROUP_WORLD_SIZE", nodes)
    ddp.init_group(torch.device("cpu"))
    seen["store"].set("k", "v")
    assert base.check(["convzoo/attempt_1/k"]) is prefixed
    assert base.check(["k"]) is not prefixed
    err = capsys.readouterr().err
    assert ("TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in err) is warned
