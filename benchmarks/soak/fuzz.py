"""Hostile and broken files: a seeded fuzzer over every kind of file convzoo reads.

    python benchmarks/soak/fuzz.py [--cases 610] [--seed 0] [--compare 25]

Each case mutates one file of a good fixture (``mutate.py``) and runs the command reading it
in-process: within 60 s, exit 0 or one stderr line naming the file, no traceback, no
temporary file, nothing changed. ``--compare N`` re-runs N as processes, which must agree.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from unittest.mock import patch

import mutate
from common import (
    IDX_FILES,
    Outcome,
    Part,
    convzoo,
    env,
    idx_bytes,
    one_line_problem,
    part_main,
    partial_files,
    snapshot,
    train_args,
    train_ok,
    write_folder,
)

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 60
#: cases per kind in the default 610
WEIGHTS = {
    "idx": 60, "gz": 45, "png": 45, "jpeg": 35, "folder": 60, "ts": 60, "model": 90,
    "best": 35, "checkpoint": 80, "config": 55, "metrics": 20, "finetune_json": 25,
}  # fmt: skip


@dataclass
class Case:
    index: int
    kind: str
    mutation: str
    argv: list[str]
    target: str  #: the hostile file (or folder)
    folder: str  #: the case's folder: partial files and changes are looked for here
    env: dict[str, str] = field(default_factory=dict)


# -- fixtures ---------------------------------------------------------------------------------
def build_fixtures(fx: Path) -> None:
    """The good files every case starts from (built once, by real CLI runs)."""
    import gzip

    import numpy as np
    from kills import Victim  # the CLI with phase marks: stop a run cleanly mid-epoch

    folder = write_folder(fx / "imgs", n_train=40, n_test=20)
    train_ok(*train_args(folder, fx / "run", epochs=1))
    for name, argv in (
        ("mid", train_args(folder, fx / "mid", epochs=3)),
        ("ftmid", ["finetune", fx / "run", "--dataset", f"folder:{folder}",
                   "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--ckpt-every", "2",
                   "--out", fx / "ftmid"]),
    ):  # fmt: skip
        v = Victim([str(a) for a in argv], fx / f"{name}.phases")
        assert v.wait_for("step", 3), v.finish()
        v.proc.send_signal(signal.SIGTERM)
        code, err = v.finish()
        assert code == 143, err
    g = np.random.default_rng(0)
    raw, gz = fx / "idx" / "FashionMNIST" / "raw", fx / "sys" / "fashion-mnist"
    raw.mkdir(parents=True)
    gz.mkdir(parents=True)
    for name in IDX_FILES:
        n = 60 if name.startswith("train") else 20
        if "images" in name:
            data = idx_bytes(g.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        else:
            data = idx_bytes(g.integers(0, 10, n, dtype=np.uint8))
        (raw / name).write_bytes(data)
        (gz / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
    # best.safetensors: own images under 500 validation images keep the last epoch
    named = ["--dataset", "fashion-mnist", "--data-dir", fx / "idx"]
    train_ok("train", *train_args(folder, fx / "named", epochs=1)[3:], *named)
    from convzoo.data.sequences import shipped_root

    shipped = shipped_root()
    ts = fx / "ts" / "ucr" / "GunPoint"
    ts.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        shutil.copy(shipped / "GunPoint" / f"GunPoint_{split}.ts", ts)
    from PIL import Image

    img = Image.fromarray(g.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    img.save(fx / "image.png")
    (fx / "image.jpg").write_bytes(mutate.jpeg_bytes(img))


# -- cases ------------------------------------------------------------------------------------
def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def plan(total: int, seed: int) -> list[str]:
    """The kind of every case, in proportion to WEIGHTS, shuffled (seeded)."""
    scale = total / sum(WEIGHTS.values())
    counts = {k: max(1, round(w * scale)) for k, w in WEIGHTS.items()}
    # rounding may miss ``total`` by a few: give or take them where the share is furthest off,
    # so that ``--cases N`` is N cases (and every process computes the same plan from N)
    while sum(counts.values()) < total:
        counts[max(WEIGHTS, key=lambda k: WEIGHTS[k] * scale - counts[k])] += 1
    while sum(counts.values()) > total and max(counts.values()) > 1:
        counts[max(WEIGHTS, key=lambda k: counts[k] - WEIGHTS[k] * scale)] -= 1
    kinds = [k for k, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(kinds)
    return kinds[:total]


def build_case(index: int, kind: str, seed: int, fx: Path, d: Path) -> Case:
    r = random.Random(f"{seed}-{index}")
    d.mkdir(parents=True)
    return BUILDERS[kind](index, r, fx, d)


def _idx(i: int, r: random.Random, fx: Path, d: Path) -> Case:
    data = copy(fx / "idx", d / "data")
    name = r.choice(IDX_FILES)
    path = data / "FashionMNIST" / "raw" / name
    if r.random() < 0.5:
        what, new = mutate.byte_mutation(path.read_bytes(), r)
    else:
        what, new = mutate.idx_lie(path.read_bytes(), 3 if "images" in name else 1, r)
    path.write_bytes(new)
    argv = ["data", "info", "fashion-mnist", "--data-dir", str(data), "--out", str(d)]
    return Case(i, "idx", f"{name}: {what}", argv, str(path), str(d))


def _gz(i: int, r: random.Random, fx: Path, d: Path) -> Case:
    sysdir = copy(fx / "sys", d / "sys")
    name = r.choice(IDX_FILES)
    path = sysdir / "fashion-mnist" / f"{name}.gz"
    raw = (fx / "idx" / "FashionMNIST" / "raw" / name).read_bytes()
    what, new = mutate.gz_mutation(raw, r)
    path.write_bytes(new)
    argv = ["data", "fetch", "fashion-mnist", "--data-dir", str(d / "data")]
    system = {"CONVZOO_SYSTEM_DATA": str(sysdir)}
    return Case(i, "gz", f"{path.name}: {what}", argv, str(path), str(d), system)


def _image(i: int, r: random.Random, fx: Path, d: Path, suffix: str) -> Case:
    path = d / f"image{suffix}"
    data = (fx / f"image{suffix}").read_bytes()
    lie = mutate.png_lie if suffix == ".png" else mutate.jpeg_lie
    what, new = lie(data, r) if r.random() < 0.6 else mutate.byte_mutation(data, r)
    path.write_bytes(new)
    if r.random() < 0.5:
        argv = ["predict", str(fx / "run"), str(path)]
    else:
        argv = ["augment", str(path), "--augment", "hflip,crop:2", "--out", str(d)]
    return Case(i, suffix[1:], what, argv, str(path), str(d))


def _folder(i: int, r: random.Random, fx: Path, d: Path) -> Case:
    root = copy(fx / "imgs", d / "imgs")
    images = sorted(root.rglob("*.png"))
    victim = r.choice(images)
    kind = r.choice(["file", "file", "file", "zero", "dir", "link", "loop", "text", "empty-class",
                     "one-class", "hidden", "broken-link", "bomb"])  # fmt: skip
    what = kind
    if kind == "file":
        data = victim.read_bytes()
        what, new = mutate.png_lie(data, r) if r.random() < 0.5 else mutate.byte_mutation(data, r)
        victim.write_bytes(new)
    elif kind == "dir":
        victim.unlink()
        victim.mkdir()
    elif kind == "one-class":
        for c in ("class1", "class2", "class3"):
            for s in ("train", "test"):
                shutil.rmtree(root / s / c)
    else:
        from PIL import Image

        {
            "zero": lambda: victim.write_bytes(b""),
            "link": lambda: (victim.parent / "more").symlink_to(root / "train"),
            "loop": lambda: (victim.parent / "loop").symlink_to(victim.parent),
            "text": lambda: victim.with_suffix(".jpg").write_text("not a jpeg"),
            "empty-class": lambda: (root / "train" / "zzz").mkdir(),
            "hidden": lambda: (victim.parent / "._x.png").write_bytes(b"\x00\x05\x16\x07junk"),
            "broken-link": lambda: (victim.parent / "gone.png").symlink_to(d / "nowhere.png"),
            "bomb": lambda: Image.new("1", (9500, 9500)).save(victim),
        }[kind]()
    skip = ["--skip-bad-images"] if r.random() < 0.3 else []
    argv = ["data", "info", f"folder:{root}", "--out", str(d), *skip]
    target = victim if kind in ("file", "zero", "text", "bomb") else root  # else: the folder
    return Case(i, "folder", f"{victim.relative_to(d)}: {what} {skip}", argv, str(target), str(d))


def _ts(i: int, r: random.Random, fx: Path, d: Path) -> Case:
    data = copy(fx / "ts", d / "data")
    path = data / "ucr" / "GunPoint" / r.choice(["GunPoint_TRAIN.ts", "GunPoint_TEST.ts"])
    if r.random() < 0.7:
        what, text = mutate.ts_lie(path.read_text(), r)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    else:
        what, new = mutate.byte_mutation(path.read_bytes(), r)
        path.write_bytes(new)
    argv = ["data", "info", "ucr:GunPoint", "--data-dir", str(data), "--out", str(d)]
    return Case(i, "ts", f"{path.name}: {what}", argv, str(path), str(d))


def _weights(i: int, r: random.Random, fx: Path, d: Path, name: str) -> Case:
    run = copy(fx / ("named" if name == "best.safetensors" else "run"), d / "run")
    path = run / name
    data = path.read_bytes()
    what, new = mutate.st_lie(data, r) if r.random() < 0.7 else mutate.byte_mutation(data, r)
    path.write_bytes(new)
    which = "last" if name == "model.safetensors" else "best"
    choice = r.random()
    if choice < 0.45:
        argv = ["evaluate", str(run), "--weights", which]
    elif choice < 0.9:
        argv = ["predict", str(path), str(fx / "image.png")]
    else:
        argv = ["finetune", str(path), "--dataset", f"folder:{fx / 'imgs'}",
                "--epochs", "1", "--batch-size", "16", "--out", str(d / "ft")]  # fmt: skip
    return Case(i, name.split(".")[0], what, argv, str(path), str(d))


def _checkpoint(i: int, r: random.Random, fx: Path, d: Path) -> Case:
    import torch

    run = copy(fx / "mid", d / "run")
    path = run / "checkpoint.pt"
    if r.random() < 0.5:
        what, new = mutate.byte_mutation(path.read_bytes(), r)
        path.write_bytes(new)
    else:
        what, state = mutate.checkpoint_lie(torch.load(path, weights_only=True), r)
        torch.save(state, path)
    argv = ["train", "--resume", str(run)]
    if r.random() < 0.3:  # the first command again, as torchrun --max-restarts would
        config = json.loads((run / "config.json").read_text())
        argv = train_args(config["dataset"][len("folder:") :], run, "--auto-resume", epochs=3)
    return Case(i, "checkpoint", what, argv, str(path), str(d))


def _json_file(i: int, r: random.Random, fx: Path, d: Path, kind: str) -> Case:
    src, name, argv_of = {
        "config": ("mid", "config.json", lambda run: ["train", "--resume", str(run)]),
        "metrics": ("run", "metrics.json", lambda run: ["train", "--resume", str(run)]),
        "finetune_json": ("ftmid", "finetune.json", lambda run: ["finetune", "--resume", str(run)]),
    }[kind]
    run = copy(fx / src, d / "run")
    path = run / name
    if kind == "config" and r.random() < 0.6:
        what, value = mutate.config_lie(json.loads(path.read_text()), r)
        path.write_bytes(mutate.json_bytes(value))
    else:
        what, new = mutate.byte_mutation(path.read_bytes(), r)
        path.write_bytes(new)
    return Case(i, kind, what, argv_of(run), str(path), str(d))


BUILDERS = {
    "idx": _idx,
    "gz": _gz,
    "png": lambda i, r, fx, d: _image(i, r, fx, d, ".png"),
    "jpeg": lambda i, r, fx, d: _image(i, r, fx, d, ".jpg"),
    "folder": _folder,
    "ts": _ts,
    "model": lambda i, r, fx, d: _weights(i, r, fx, d, "model.safetensors"),
    "best": lambda i, r, fx, d: _weights(i, r, fx, d, "best.safetensors"),
    "checkpoint": _checkpoint,
    "config": lambda i, r, fx, d: _json_file(i, r, fx, d, "config"),
    "metrics": lambda i, r, fx, d: _json_file(i, r, fx, d, "metrics"),
    "finetune_json": lambda i, r, fx, d: _json_file(i, r, fx, d, "finetune_json"),
}


# -- running and judging ----------------------------------------------------------------------
class Hang(BaseException):
    """Raised by SIGALRM: the case ran past its time."""


def run_in_process(case: Case) -> Outcome:
    """``convzoo.cli.main(argv)`` with stdout/stderr captured and the case's environment; an
    exception escaping it is what the console script would print as a traceback."""
    from convzoo.cli import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise Hang

    signal.signal(signal.SIGALRM, alarm)
    t, code, timed_out = time.perf_counter(), None, False
    with patch.dict(os.environ, case.env), redirect_stdout(out), redirect_stderr(err):
        signal.alarm(TIMEOUT_S)
        try:
            code = main(case.argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Hang:
            timed_out = True
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            signal.alarm(0)
    return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - t, timed_out)


def judge(case: Case, o: Outcome, before: dict) -> str | None:
    target = Path(case.target)
    names = (str(target), target.name, str(target.parent))
    problem = one_line_problem(o, names)
    if problem:
        return problem
    if left := partial_files(Path(case.folder)):
        return f"partial files left: {left[:3]}"
    if o.code != 0:
        after = snapshot(Path(case.folder))
        changed = [k for k, v in before.items() if after.get(k) != v]
        if changed:
            return f"a failing command changed {changed[:3]}"
    return None


def first_line(o: Outcome) -> str:
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    return lines[0] if lines else ""


def worker(fx: Path, cases_dir: Path, kinds: list[str], start: int, seed: int, out: Path) -> None:
    """Run cases ``start``.. in this process, one JSON line each to ``out``."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))  # a runaway allocation fails
    with open(out, "a") as log:
        for i in range(start, len(kinds)):
            d = cases_dir / f"{i:04d}"
            shutil.rmtree(d, ignore_errors=True)
            case = build_case(i, kinds[i], seed, fx, d)
            log.write(json.dumps({"start": i}) + "\n")
            log.flush()
            before = snapshot(d)
            o = run_in_process(case)
            problem = judge(case, o, before)
            record = {**asdict(case), "code": o.code, "line": first_line(o),
                      "seconds": round(o.seconds, 3), "problem": problem}  # fmt: skip
            log.write(json.dumps(record) + "\n")
            log.flush()
            shutil.rmtree(d, ignore_errors=True)


def run_all(fx: Path, work: Path, kinds: list[str], seed: int) -> list[dict]:
    """Workers over all cases; a case whose worker died is failed and the next worker goes on."""
    out = work / "results.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    done: dict[int, dict] = {}
    start = 0
    while start < len(kinds):
        cmd = [sys.executable, __file__, "--worker", str(start), "--fixtures", str(fx),
               "--work", str(work), "--cases", str(len(kinds)), "--seed", str(seed)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        last, seen = time.monotonic(), 0
        while proc.poll() is None:
            time.sleep(0.5)
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) != seen:
                seen, last = len(lines), time.monotonic()
                print(f"\r  fuzz: {sum('problem' in line for line in lines)}/{len(kinds)}",
                      end="", flush=True)  # fmt: skip
            if time.monotonic() - last > TIMEOUT_S + 60:  # stuck where SIGALRM cannot reach
                proc.kill()
        err = proc.stderr.read().decode()[-500:]
        started = None
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            if "start" in rec:
                started = rec["start"]
            else:
                done[rec["index"]] = rec
        if started is not None and started not in done:  # the worker died in this case
            done[started] = {"index": started, "kind": kinds[started], "problem":
                             f"worker died ({proc.returncode}): {err}", "code": None}  # fmt: skip
        if proc.returncode != 0 and not done:
            raise SystemExit(f"fuzz worker failed: {err}")
        if (max(done) + 1 if done else 0) <= start:  # ran no case: another would not either
            raise SystemExit(f"fuzz worker from case {start} ran none ({proc.returncode}): {err}")
        start = max(done) + 1
    print()
    return [done[i] for i in sorted(done)]


def compare(fx: Path, work: Path, kinds: list[str], seed: int, n: int, results: list[dict]):
    """``n`` cases again as real processes: the same exit code and line? (times of both)."""
    r = random.Random(f"{seed}-compare")
    chosen = sorted(r.sample(range(len(kinds)), min(n, len(kinds))))
    agree, sub_s, in_s, differ = 0, 0.0, 0.0, []
    for i in chosen:
        d = work / "compare" / f"{i:04d}"
        shutil.rmtree(d, ignore_errors=True)
        case = build_case(i, kinds[i], seed, fx, d)
        o = convzoo(*case.argv, timeout=TIMEOUT_S, **case.env)
        sub_s += o.seconds
        in_s += results[i].get("seconds", 0.0)
        line = re.sub(re.escape(str(work / "compare")), "", first_line(o))
        theirs = re.sub(re.escape(str(work / "cases")), "", results[i].get("line", ""))
        same = o.code == results[i]["code"] and line == theirs
        agree += same
        if not same:
            differ.append(f"case {i}: process {o.code} {line[:120]!r} / in-process "
                          f"{results[i]['code']} {theirs[:120]!r}")  # fmt: skip
        shutil.rmtree(d, ignore_errors=True)
    return {"compared": len(chosen), "agree": agree, "differ": differ,
            "process_s_per_case": sub_s / max(len(chosen), 1),
            "in_process_s_per_case": in_s / max(len(chosen), 1)}  # fmt: skip


def body(part: Part, work: Path, args) -> None:
    fx = args.fixtures or work / "fixtures"
    kinds = plan(args.cases, args.seed)
    if args.worker is not None:
        worker(fx, work / "cases", kinds, args.worker, args.seed, work / "results.jsonl")
        return
    if not (fx / "run" / "model.safetensors").exists():
        shutil.rmtree(fx, ignore_errors=True)
        build_fixtures(fx)
    results = run_all(fx, work, kinds, args.seed)
    for rec in results:
        ok = rec["problem"] is None
        part.check(ok, f"case {rec['index']} {rec['kind']} ({rec.get('mutation', '')}): "
                       f"{rec['problem']}")  # fmt: skip
    by_kind: dict[str, list[int]] = {}
    for rec in results:
        counts = by_kind.setdefault(rec["kind"], [0, 0, 0])
        counts[0] += 1
        counts[1 if rec.get("code") == 0 else 2] += 1
    part.notes["by_kind"] = {k: {"cases": a, "exit_0": b, "refused": c}
                             for k, (a, b, c) in sorted(by_kind.items())}  # fmt: skip
    part.notes["slowest_case_s"] = max((rec.get("seconds", 0) for rec in results), default=0)
    if args.compare:
        part.notes["compare"] = compare(fx, work, kinds, args.seed, args.compare, results)
        cmp = part.notes["compare"]
        part.check(cmp["agree"] == cmp["compared"], f"in-process differs: {cmp['differ']}")


def main(argv: list[str] | None = None) -> Part:
    """``--compare N``: cases re-run as real processes; ``--worker`` is run_all's."""
    options = dict(cases=sum(WEIGHTS.values()), seed=0, compare=25, fixtures=Path, worker=int)
    return part_main("fuzz", __doc__, argv, body, **options)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    result = main()
    sys.exit(1 if result.failures else 0)
