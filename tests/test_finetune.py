"""Fine-tuning: sources (our runs, torchvision state dicts), new head, learning rates, frozen
stages, gray input into RGB stems, exact resume, and one clear error per bad input."""

import copy
import io
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import convzoo
from convzoo.cli import main as cli_main
from convzoo.errors import CheckpointError, ConvzooError
from convzoo.finetuning import (
    FinetuneError,
    adapt_input_channels,
    adapt_normalization,
    load_source,
)
from convzoo.io import load_weights
from convzoo.train import Callback, train
from convzoo.train.run import resolve_config
from convzoo.trained import load_model, weights_file
from helpers import CrashAt, toy_dataset, toy_pair

SMALL = {"width": 8}  # speednet, 4 stages with batch norm, ~10k parameters
FAST = dict(batch_size=32, image_size=16, precision="fp32", device="cpu", augment="")


def body_tensors(state: dict[str, torch.Tensor], prefix: str = "head.") -> dict:
    return {k: v.clone() for k, v in state.items() if not k.startswith(prefix)}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """speednet trained for 2 epochs on 4 toy classes: the network to fine-tune."""
    out = tmp_path_factory.mktemp("src") / "run"
    cfg = resolve_config(
        dict(model="speednet", model_options=SMALL, epochs=2, out=str(out), dataset="toy", **FAST)
    )
    train(cfg, data=toy_pair(), stdout=io.StringIO())
    return out


def new_task(n_train: int = 96, n_test: int = 32, classes: int = 3):
    """Another task for the same network: 3 classes, other images."""
    kw = dict(num_classes=classes, size=16, name="toy3")
    return (
        toy_dataset(n_train, seed=7, **kw),
        toy_dataset(n_test, seed=8, split="test", **kw),
    )


def ft(source, data=None, **kw):
    values = dict(epochs=1, verbose=False, **FAST)
    values.update(kw)
    return convzoo.finetune(source, data if data is not None else new_task(), **values)


# -- sources ---------------------------------------------------------------------------------
def test_our_run_gets_a_new_head_and_keeps_its_body_size_and_normalization(source_run, tmp_path):
    tensors, meta = load_weights(weights_file(source_run))
    result = ft(source_run, out=tmp_path / "ft", freeze=4)  # every stage frozen: a linear probe
    model = result.model
    assert model.num_classes == 3 and model.get_classifier().out_features == 3
    after = model.state_dict()
    for k, v in body_tensors(tensors).items():  # the whole body is the source's, untouched
        assert torch.equal(after[k].cpu(), v), k
    assert not torch.equal(after["head.fc.bias"][:3], tensors["head.fc.bias"][:3])
    # the run rebuilds from its own model.safetensors, with the source's normalization
    rebuilt = load_model(result.run_dir)
    new_meta = rebuilt.meta
    assert new_meta.model == "speednet" and new_meta.num_classes == 3
    assert new_meta.mean == meta["mean"] and new_meta.std == meta["std"]
    assert new_meta.image_size == meta["image_size"] == 16
    assert (result.run_dir / "finetune.json").is_file()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))


def test_same_classes_keep_the_head_unless_asked(source_run):
    data = toy_pair()  # the source's own classes
    kept = ft(source_run, data, lr=1e-9, freeze=4)
    src = load_weights(weights_file(source_run))[0]
    w = kept.model.get_classifier().weight.detach()
    assert torch.allclose(w, src["head.fc.weight"], atol=1e-6)
    reset = ft(source_run, data, lr=1e-9, freeze=4, reset_head=True)
    assert not torch.allclose(reset.model.get_classifier().weight.detach(), w, atol=1e-3)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A torchvision resnet18 state dict as torchvision writes one (random weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_torchvision_resnet18_state_dict_finetunes_one_step(resnet18_file, tmp_path):
    state = torch.load(resnet18_file, weights_only=True)
    result = ft(
        "torchvision:resnet18",
        weights=str(resnet18_file),
        freeze=1,
        batch_size=16,
        image_size=32,
        data=new_task(16, 8),
        out=tmp_path / "run",
    )
    model = result.model
    assert model.model_name == "tv_resnet18" and model.in_channels == 1
    after = model.state_dict()
    # the stem was frozen: it holds the file's weights summed over RGB, statistics unmoved
    torch.testing.assert_close(after["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    for k in ("bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"):
        assert torch.equal(after[k], state[k]), k
    assert not torch.equal(after["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    rebuilt = load_model(result.run_dir)
    meta = rebuilt.meta
    assert meta.model == "tv_resnet18" and meta.in_channels == 1
    assert meta.mean == pytest.approx([0.449]) and meta.std == pytest.approx([0.226])
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))
    # the same weights as safetensors load the same way, with a clean report
    st = tmp_path / "resnet18.safetensors"
    save_file(state, st)
    src = load_source("torchvision:resnet18", str(st), strict=True)
    assert src.report.clean and src.image_size == 224 and len(src.classes) == 1000


def test_gray_stem_equals_the_rgb_network_on_the_replicated_image():
    torch.manual_seed(0)
    rgb = convzoo.create_model("tv_resnet18", num_classes=10, in_channels=3).eval()
    gray = copy.deepcopy(rgb)
    assert adapt_input_channels(gray, 1) is not None
    assert gray.conv1.weight.shape == (64, 1, 7, 7) and gray.model_kwargs["in_channels"] == 1
    x = torch.randn(2, 1, 40, 40)  # an already-normalized gray batch
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)
    mean, std = adapt_normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1)
    assert mean == pytest.approx((0.449,)) and std == pytest.approx((0.226,))


# -- learning rates and freezing -------------------------------------------------------------
class Watch(Callback):
    """Records the groups' learning rates every step and the model after epoch 1."""

    def __init__(self):
        self.lrs, self.after_first = [], None

    def on_step_end(self, trainer):
        self.lrs.append([g["lr"] for g in trainer.optimizer.param_groups])
        self.groups = trainer.optimizer.param_groups

    def on_epoch_end(self, trainer, record):
        if trainer.epoch == 1:
            self.after_first = copy.deepcopy(trainer.model.state_dict())


def test_head_learning_rate_is_the_multiplier_times_the_base(source_run):
    watch = Watch()
    result = ft(source_run, lr=0.02, head_lr_mult=7.0, epochs=2, callbacks=[watch])
    assert len(watch.lrs) == 2 * 3  # 96 images, batch 32, 2 epochs
    for body, head in watch.lrs:  # through the whole schedule
        assert head == pytest.approx(7.0 * body)
    assert watch.lrs[-1][0] < watch.lrs[0][0]  # the cosine schedule moved both
    body, head = watch.groups
    assert (body["initial_lr"], head["initial_lr"]) == pytest.approx((0.02, 0.14))
    classifier = list(result.model.get_classifier().parameters())
    assert len(head["params"]) == 2 and all(p is q for p, q in zip(head["params"], classifier))
    assert len(body["params"]) == len(list(result.model.parameters())) - 2


def test_frozen_stages_do_not_change_and_their_statistics_do_not_move(source_run):
    src = load_weights(weights_file(source_run))[0]
    watch = Watch()
    result = ft(source_run, freeze_until="b2", unfreeze_at=2, epochs=2, callbacks=[watch])
    first, final = watch.after_first, result.model.state_dict()
    frozen = [k for k in src if k.startswith(("features.b1.", "features.b2."))]
    assert any("running_mean" in k for k in frozen) and any("num_batches" in k for k in frozen)
    for k in frozen:  # epoch 1: frozen, batch-norm statistics included
        assert torch.equal(first[k], src[k]), k
    assert not torch.equal(first["features.b3.0.weight"], src["features.b3.0.weight"])
    # epoch 2: unfrozen, they train
    assert not torch.equal(final["features.b1.0.weight"], src["features.b1.0.weight"])
    assert not torch.equal(final["features.b1.2.running_mean"], src["features.b1.2.running_mean"])


def test_too_many_frozen_stages_is_one_clear_error(source_run):
    with pytest.raises(FinetuneError, match=r"cannot freeze 5 stages: speednet has 4 stages"):
        ft(source_run, freeze=5)
    with pytest.raises(FinetuneError, match=r"no stage 'layer9'; its stages are b1, b2, b3, b4"):
        ft(source_run, freeze_until="layer9")


def test_resume_with_gradual_unfreezing_is_bitwise_identical(source_run, tmp_path, capsys):
    kw = dict(freeze=2, unfreeze_at=2, epochs=3, ckpt_every=2)
    full = ft(source_run, out=tmp_path / "full", **kw)
    with pytest.raises(RuntimeError, match="injected"):
        ft(source_run, out=tmp_path / "crashed", callbacks=[CrashAt(5)], **kw)  # in epoch 2
    resumed = convzoo.finetune(None, new_task(), resume=tmp_path / "crashed", verbose=False)
    a = load_weights(full.run_dir / "model.safetensors")[0]
    b = load_weights(resumed.run_dir / "model.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the train command refuses it: it would lose the head lr and the freezing
    assert cli_main(["train", "--resume", str(tmp_path / "crashed")]) == 2
    assert "convzoo finetune --resume" in capsys.readouterr().err
    assert cli_main(["finetune", "--resume", str(tmp_path / "crashed"), "--freeze", "1"]) == 2
    assert "drop --freeze" in capsys.readouterr().err


# -- bad input: one clear line each --------------------------------------------------------
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and isinstance(exc_info.value, ConvzooError)
    return msg


def test_weights_for_another_architecture_get_a_readable_report(resnet18_file, tmp_path):
    other = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), other)
    with pytest.raises(CheckpointError) as e:
        load_source("torchvision:resnet18", str(other))
    msg = one_line(e)
    assert "does not fit tv_resnet18" in msg and "missing (conv1.weight" in msg
    assert "unexpected (features.0.0.weight" in msg and "more" in msg

    state = torch.load(resnet18_file, weights_only=True)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointError) as e:
        load_source("torchvision:resnet18", str(_save(state, tmp_path / "shape.pth")))
    assert "layer1.0.conv1.weight: file 64x64x1x1, model 64x64x3x3" in one_line(e)

    state = torch.load(resnet18_file, weights_only=True)
    state["extra.weight"] = torch.zeros(3)
    extra = _save(state, tmp_path / "extra.pth")
    src = load_source("torchvision:resnet18", str(extra))  # every tensor needed is there
    assert src.report.unexpected == ["extra.weight"] and not src.report.missing
    with pytest.raises(CheckpointError, match=r"exactly \(--strict\).*1 unexpected"):
        load_source("torchvision:resnet18", str(extra), strict=True)


def _save(state, path):
    torch.save(state, path)
    return path


MARKER = Path("/tmp/convzoo-finetune-pwned")


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def test_missing_truncated_and_malicious_weights_are_refused(resnet18_file, tmp_path, capsys):
    MARKER.unlink(missing_ok=True)
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Evil()}, evil)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(resnet18_file.read_bytes()[:4096])
    st = tmp_path / "truncated.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, st)
    st.write_bytes(st.read_bytes()[:200])
    cases = {
        str(tmp_path / "nope.pth"): "does not exist",
        str(truncated): "truncated",
        str(st): "truncated or not a safetensors file",
        str(evil): "refused to load",
    }
    for weights, expected in cases.items():
        code = cli_main(["finetune", "torchvision:resnet18", "--weights-file", weights])
        err = capsys.readouterr().err
        assert code == 2 and expected in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not MARKER.exists()


def test_cli_bad_sources_and_options_are_one_line(source_run, tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, plain)
    cases = [
        ([str(source_run), "--freeze", "9"], "speednet has 4 stages (b1, b2, b3, b4)"),
        ([str(tmp_path / "nothing")], "does not exist"),
        ([str(plain)], "finetune torchvision:ARCH --weights-file"),
        (["torchvision:resnet18"], "needs --weights-file"),
        (["torchvision:resnet99", "--weights-file", "x"], "torchvision:resnet18"),
        (["torchvision:resnet18", "--weights-file", "IMAGENET9K"], "does not exist"),
        ([str(source_run), "--unfreeze-at", "3"], "needs frozen stages"),
        ([str(source_run), "--weights-file", "DEFAULT"], "carries its own weights"),
        ([str(source_run), "--freeze", "2", "--head-lr-mult", "0"], "must be > 0"),
    ]
    for args, expected in cases:
        assert cli_main(["finetune", *args]) == 2, args
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, (args, err)


def test_offline_default_weights_say_which_file_to_provide(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError) as e:
        load_source("torchvision:resnet18", "DEFAULT")
    msg = one_line(e)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "--weights-file PATH/resnet18-f37072fd.pth" in msg and "Name or service" in msg


def test_cli_finetune_with_a_subset(source_run, tmp_path, monkeypatch, capsys):
    """``convzoo finetune --dataset NAME --subset ...`` end to end (the data set is faked)."""
    import convzoo.data

    def load_dataset(name, split="train", root=None):
        assert name == "toy10"
        return toy_dataset(400 if split == "train" else 100, num_classes=6, split=split)

    monkeypatch.setattr(convzoo.data, "load_dataset", load_dataset, raising=False)
    out = tmp_path / "run"
    args = ["finetune", str(source_run), "--dataset", "toy10", "--out", str(out)]
    args += ["--subset", "classes=3-5,shots=4", "--epochs", "1", "--freeze", "1"]
    args += ["--precision", "fp32", "--device", "cpu"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "new head head.fc (3 classes" in printed and "frozen stages b1 of 4" in printed
    assert "(12 train / " in printed  # 4 images of each of 3 classes
    meta = load_weights(out / "model.safetensors")[1]
    assert meta["classes"] == ["class3", "class4", "class5"]
    assert meta["subset"] == "classes=3-5,shots=4"


def test_stages_of_the_torchvision_models():
    for name, stages in [
        ("tv_resnet18", ["stem", "layer1", "layer2", "layer3", "layer4"]),
        ("tv_alexnet", ["b1", "b2", "b3"]),
        ("tv_mobilenet_v3_small", [f"b{i}" for i in range(1, 14)]),
    ]:
        with torch.device("meta"):
            model = convzoo.create_model(name)
        assert [n for n, _ in model.stages] == stages
        assert isinstance(model.get_classifier(), nn.Linear)
        ref = getattr(torchvision.models, name[3:])
        with torch.device("meta"):
            keys = list(ref(weights=None, num_classes=10).state_dict())
        assert list(model.state_dict()) == keys  # torchvision's files load as they are
