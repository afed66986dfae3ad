"""Malicious checkpoints and weights through every way convzoo reads them (7 commands, 6 API
calls), and decompression-bomb images through every way it reads images: each refused in one
line saying why, and no payload runs (its marker file stays absent).

    python benchmarks/soak/malicious.py [--bombs-only]
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from common import (
    Part,
    convzoo,
    env,
    one_line_problem,
    part_main,
    train_args,
    train_ok,
    write_folder,
)


# -- payloads ---------------------------------------------------------------------------------
class Reduce:
    """An object whose unpickling calls ``fn(*args)``."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def op_call(fn: bytes, *args: bytes) -> bytes:
    return fn + b"(" + b"".join(args) + b"tR"


def raw(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def torch_file(obj, legacy: bool = False) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def checkpoint(evil) -> dict:
    return {"format": "convzoo-checkpoint", "version": 1, "trainer": evil}


def legacy_tar(evil_pickle: bytes) -> bytes:
    """torch's oldest format: a tar of ``sys_info``, ``pickle``, ``storages``, ``tensors``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("sys_info", "pickle", "storages", "tensors"):
            info = tarfile.TarInfo(name)
            info.size = len(evil_pickle)
            tar.addfile(info, io.BytesIO(evil_pickle))
    return buf.getvalue()


def zip_other_entry(evil_pickle: bytes) -> bytes:
    """torch's zip layout without ``data.pkl``: the payload sits in entries of other names."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/version", "3\n")
        z.writestr("archive/evil.pkl", evil_pickle)
        z.writestr("archive/data/0", evil_pickle)
        z.writestr("archive/byteorder", "little")
    return buf.getvalue()


def payloads(marker: Path) -> dict[str, bytes]:
    """Every kind of malicious file, each touching ``marker`` if it ran."""
    import subprocess as sp

    m = str(marker)
    touch = f"touch {m}"
    getattr_chain = raw(
        op_call(
            op_call(op_global("builtins", "getattr"),
                    op_call(op_global("builtins", "__import__"), op_str("os")), op_str("system")),
            op_str(touch),
        )
    )  # fmt: skip
    partial = raw(op_call(op_call(op_global("functools", "partial"),
                                  op_global("os", "system"), op_str(touch))))  # fmt: skip
    nested_load = raw(op_call(op_global("torch.serialization", "load"), op_str(m + ".pt")))
    evil_pickle = pickle.dumps(Reduce(os.system, touch), protocol=2)
    meta = {
        "convzoo": base64.b64encode(evil_pickle).decode(),
        "pickle": evil_pickle.decode("latin-1"),
    }
    st_header = json.dumps({"__metadata__": meta}).encode()
    return {
        "os.system in a checkpoint": torch_file(checkpoint(Reduce(os.system, touch))),
        "eval": torch_file(checkpoint(Reduce(eval, f"open({m!r}, 'w')"))),
        "exec": torch_file(checkpoint(Reduce(exec, f"open({m!r}, 'w').close()"))),
        "subprocess.Popen": torch_file(checkpoint(Reduce(sp.Popen, ["touch", m]))),
        "a module global (builtins.open)": torch_file(checkpoint(Reduce(open, m, "w"))),
        "nested deep in dicts": torch_file(
            checkpoint({"model": {"layer": {"weight": Reduce(os.system, touch)}}})
        ),
        "torch's legacy format": torch_file(checkpoint(Reduce(os.system, touch)), legacy=True),
        "torch's legacy tar format": legacy_tar(evil_pickle),
        "a zip entry of another name": zip_other_entry(evil_pickle),
        "builtins.getattr chain": getattr_chain,
        "functools.partial": partial,
        "a nested torch.load": nested_load,
        "protocol 0 (INST/GLOBAL text)": pickle.dumps(Reduce(os.system, touch), protocol=0),
        "protocol 5 (STACK_GLOBAL, memo)": pickle.dumps(Reduce(os.system, touch), protocol=5),
        "a pickle in safetensors metadata": len(st_header).to_bytes(8, "little") + st_header,
    }


# -- entry points -----------------------------------------------------------------------------
def cli_cases(fx: Path, case: Path, payload: bytes) -> dict[str, tuple[list[str], Path]]:
    """The CLI commands that read a planted file: name -> (argv, the planted file)."""
    run = shutil.copytree(fx / "run", case / "run")
    ft = shutil.copytree(fx / "ft", case / "ft")
    weights = case / "weights.pth"
    for path in (run / "checkpoint.pt", ft / "checkpoint.pt", weights):
        path.write_bytes(payload)
    (run / "metrics.json").unlink()
    wrun = shutil.copytree(fx / "run", case / "wrun")
    for name in ("model.safetensors", "best.safetensors"):
        (wrun / name).write_bytes(payload)
    config = json.loads((run / "config.json").read_text())
    folder = config["dataset"][len("folder:") :]
    image = next(Path(folder).rglob("*.png"))
    data = ["--dataset", f"folder:{folder}"]
    tv = ["finetune", "torchvision:resnet18", "--epochs", "1"]
    return {
        "train --resume": (["train", "--resume", run], run / "checkpoint.pt"),
        "train --auto-resume": (train_args(folder, run, "--auto-resume"), run / "checkpoint.pt"),
        "finetune --resume": (["finetune", "--resume", ft], ft / "checkpoint.pt"),
        "finetune --weights-file": (
            [*tv, "--weights-file", weights, *data, "--out", case / "ftw"],
            weights,
        ),
        "finetune RUN": (
            ["finetune", wrun, *data, "--out", case / "ftr"],
            wrun / "best.safetensors",
        ),
        "evaluate": (["evaluate", wrun], wrun / "best.safetensors"),
        "predict": (["predict", wrun / "model.safetensors", image], wrun / "model.safetensors"),
    }


API_SCRIPT = r"""
import json, sys
from pathlib import Path
import convzoo
from convzoo.errors import ConvzooError
case, fx = Path(sys.argv[1]), Path(sys.argv[2])
run, weights, ft = case / "run", case / "weights.pth", case / "ft"
folder = json.loads((run / "config.json").read_text())["dataset"]
calls = {
    "convzoo.load_model": lambda: convzoo.load_model(weights),
    "convzoo.io.load_checkpoint": lambda: convzoo.io.load_checkpoint(run / "checkpoint.pt"),
    "convzoo.io.load_state_dict_file": lambda: convzoo.io.load_state_dict_file(weights),
    "convzoo.finetune(weights=)": lambda: convzoo.finetune(
        "torchvision:resnet18", folder, weights=str(weights), epochs=1, verbose=False),
    "convzoo.finetune(resume=)": lambda: convzoo.finetune(None, resume=ft, verbose=False),
    "train(resume=)": lambda: __import__("convzoo.train.run", fromlist=["x"]).train(
        __import__("convzoo.train.rundir", fromlist=["x"]).resume_config(run, {}), resume=run),
}
for name, call in calls.items():
    try:
        call()
        result = {"name": name, "refused": False, "message": "loaded"}
    except ConvzooError as e:
        result = {"name": name, "refused": True, "message": str(e)}
    except BaseException as e:
        result = {"name": name, "refused": False, "message": f"{type(e).__name__}: {e}"[:300]}
    print(json.dumps(result), flush=True)
"""


def says_why(line: str, kind: str) -> bool:
    """A refusal that says what it refused: the function a pickle would call, or why the file
    is no file convzoo reads (never PyTorch's generic advice to load it unsafely)."""
    if "weights_only=False" in line or "will likely succeed" in line:
        return False
    words = ("would call", "uses the instruction", "not a safetensors", "truncated or not",
             "unreadable convzoo metadata", "carries no convzoo metadata", "takes a convzoo run",
             "not a PyTorch file", "refused")  # fmt: skip
    return any(w in line for w in words)


def code_in_files(part: Part, fx: Path, work: Path) -> None:
    for k, kind in enumerate(payloads(work / "MARKER")):
        case = work / f"case{k:02d}"
        marker = case / "MARKER"
        case.mkdir(parents=True)
        planted = payloads(marker)[kind]
        for entry, (argv, path) in cli_cases(fx, case, planted).items():
            o = convzoo(*argv, timeout=120)
            problem = one_line_problem(o, (str(path), path.name))
            if o.code == 0:
                problem = "loaded"
            line = o.stderr.strip()
            part.check(problem is None, f"{kind} via {entry}: {problem}")
            part.check(says_why(line, kind), f"{kind} via {entry}: does not say why: {line[:200]}")
            part.check(not marker.exists(), f"{kind} via {entry}: THE PAYLOAD RAN")
            marker.unlink(missing_ok=True)
        api = subprocess.run(
            [sys.executable, "-c", API_SCRIPT, str(case), str(fx)],
            capture_output=True, text=True, env=env(), timeout=600,
        )  # fmt: skip
        results = [json.loads(line) for line in api.stdout.splitlines() if line.startswith("{")]
        part.check(len(results) == 6, f"{kind} via the API: {api.stderr[-300:]}")
        for res in results:
            part.check(res["refused"], f"{kind} via {res['name']}: {res['message']}")
            part.check(not marker.exists(), f"{kind} via {res['name']}: THE PAYLOAD RAN")
        print(f"  {kind}: refused by the CLI and {len(results)} API calls", flush=True)
        shutil.rmtree(case)


# -- decompression bombs ----------------------------------------------------------------------
def bombs(work: Path) -> dict[str, Path]:
    """Images that claim (or hold) more pixels than PIL's limit, in a few hundred kB at most."""
    import mutate
    from PIL import Image

    out = {}
    work.mkdir(parents=True, exist_ok=True)
    Image.new("1", (9500, 9500)).save(work / "over-the-limit.png")  # 90.3 M pixels, 11 kB
    out["PNG just over the limit"] = work / "over-the-limit.png"
    small = work / "small.png"
    Image.new("L", (16, 16)).save(small)
    ihdr = mutate.png_chunks(small.read_bytes())
    body = bytearray(ihdr[0][1])
    body[0:8] = struct.pack(">II", 65535, 65535)
    (work / "claims-4G.png").write_bytes(mutate.png_build([(b"IHDR", bytes(body)), *ihdr[1:]]))
    out["PNG claiming 65535x65535"] = work / "claims-4G.png"
    jpeg = mutate.jpeg_bytes(Image.new("RGB", (16, 16)))
    sof = jpeg.find(b"\xff\xc0")
    (work / "claims.jpg").write_bytes(
        jpeg[: sof + 5] + struct.pack(">HH", 65535, 65535) + jpeg[sof + 9 :]
    )
    out["JPEG claiming 65535x65535"] = work / "claims.jpg"
    Image.new("P", (9500, 9500)).save(work / "over.gif")
    out["GIF just over the limit"] = work / "over.gif"
    return out


def check_refused(part: Part, kind: str, entry: str, argv: list, path: Path) -> None:
    """``argv`` must end non-zero with one line naming ``path`` and calling it a bomb."""
    t = time.perf_counter()
    o = convzoo(*argv, timeout=120)
    problem = one_line_problem(o, (str(path),)) if o.code != 0 else "accepted"
    part.check(problem is None, f"{kind} via {entry}: {problem}")
    line = o.stderr.strip()
    ok = "decompression" in line or "pixels" in line
    part.check(ok, f"{kind} via {entry}: not called a bomb: {line[:200]}")
    print(f"  {kind} via {entry}: exit {o.code} in {time.perf_counter() - t:.1f} s")


def decompression_bombs(part: Part, fx: Path, work: Path) -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS  # what an image folder reads

    run = fx / "run"
    for kind, bomb in bombs(work).items():
        cases = {
            "predict": (["predict", run, bomb], bomb),
            "augment": (["augment", bomb, "--augment", "hflip", "--out", work], bomb),
        }
        if bomb.suffix not in IMG_EXTENSIONS:  # a folder never opens a .gif: nothing to refuse
            for entry, (argv, path) in cases.items():
                check_refused(part, kind, entry, argv, path)
            continue
        folder = shutil.copytree(fx / "imgs", work / f"imgs-{bomb.stem}")
        planted = folder / "train" / "class0" / bomb.name
        shutil.copy(bomb, planted)
        cases |= {
            "data info folder:": (
                ["data", "info", f"folder:{folder}", "--out", work],
                planted,
            ),
            "train folder:": (train_args(folder, work / f"run-{bomb.stem}", epochs=1), planted),
        }
        for entry, (argv, path) in cases.items():
            check_refused(part, kind, entry, argv, path)
        o = convzoo(*train_args(folder, work / f"skip-{bomb.stem}", "--skip-bad-images", epochs=1))
        part.check(o.code == 0, f"{kind}: --skip-bad-images did not skip it: {o.stderr[-200:]}")


def build_fixtures(fx: Path) -> None:
    folder = write_folder(fx / "imgs", n_train=40, n_test=20)
    train_ok(*train_args(folder, fx / "run", epochs=1))
    o = convzoo("finetune", fx / "run", "--dataset", f"folder:{folder}", "--epochs", "1",
                "--batch-size", "8", "--out", fx / "ft", timeout=600)  # fmt: skip
    assert o.code == 0, o.stderr


def body(part: Part, work: Path, args) -> None:
    fx = work / "fixtures"
    if not (fx / "ft" / "model.safetensors").exists():
        shutil.rmtree(fx, ignore_errors=True)
        build_fixtures(fx)
    if not args.bombs_only:
        code_in_files(part, fx, work / "code")
    decompression_bombs(part, fx, work / "bombs")
    part.notes["payload_kinds"] = list(payloads(work / "MARKER"))


def main(argv: list[str] | None = None) -> Part:
    return part_main("malicious", __doc__, argv, body, bombs_only=False)


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
