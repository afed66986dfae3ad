"""A lost node: a two-node torchrun job (``--nnodes 2``, c10d on 127.0.0.1, gloo, ``--max-restarts
3``) loses node B's worker, or node B whole (launched again), mid-epoch; both launches must exit
0 with weights bitwise equal to an uninterrupted two-node job's.

    python benchmarks/soak/lostnode.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import Part, env, part_main, rng, train_args, write_folder

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(
    node: str, port: int, job: str, folder: Path, out: Path, log: Path, **stop: str
) -> subprocess.Popen:
    """One node's ``torchrun`` (A hosts the c10d store, so that B may be lost); with ``stop``
    (``SOAK_STOP_AT``, ``SOAK_STOP_ONCE``, ``SOAK_PHASES``) its worker runs ``victim.py`` and
    stops itself there once, to be lost at that moment however slow the machine."""
    program = [str(HERE / "victim.py")] if stop else ["-m", "convzoo"]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", job,
        "--rdzv-conf", f"is_host={int(node == 'A')}", "--max-restarts", "3",
        "--monitor-interval", "0.5", *program,
        *train_args(folder, out, "--strategy", "ddp", "--auto-resume", epochs=3),
    ]  # fmt: skip
    f = open(log, "a")  # noqa: SIM115 - the process writes it until it ends
    # a returning node's agent waits for MASTER_ADDR, which the agents' shared rendezvous store
    # (torch >= 2.4) publishes in the first round only (both time out after 60 s): opt out
    e = env(TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1", **stop)
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=e, start_new_session=True)


def wait_all(procs: list[subprocess.Popen], timeout: float = 900) -> list[int | None]:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    return [p.returncode for p in procs]


def job(part: Part, folder: Path, work: Path, name: str, lose: str | None, at: int):
    """One two-node job; ``lose``: None, "worker" or "node" (after checkpoint step ``at``)."""
    port, out, log = free_port(), work / name, work / f"{name}.log"
    a = launch("A", port, name, folder, out, log)
    time.sleep(1)
    stop = {"SOAK_STOP_AT": f"step#{at}", "SOAK_STOP_ONCE": str(work / f"{name}.stopped"),
            "SOAK_PHASES": str(work / f"{name}.phases")} if lose else {}  # fmt: skip
    b = launch("B", port, name, folder, out, log, **stop)
    if lose is not None:
        while not stopped_worker(b) and a.poll() is None and b.poll() is None:
            time.sleep(0.05)
        import psutil

        victims = [c.pid for c in psutil.Process(b.pid).children(recursive=True)]
        if lose == "node":
            victims.append(b.pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
                os.kill(pid, signal.SIGKILL)
        if lose == "node":
            b.wait()
            b = launch("B", port, name, folder, out, log)  # the node comes back
    codes = wait_all([a, b])
    text = log.read_text()
    part.check(codes == [0, 0], f"{name}: torchrun exited {codes}: {text[-600:]}")
    return out, text


def stopped_worker(agent: subprocess.Popen) -> bool:
    """Whether a worker of ``agent`` has stopped itself (state T) at its mark."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return any(
            p.status() == psutil.STATUS_STOPPED for p in psutil.Process(agent.pid).children(True)
        )
    return False


def body(part: Part, work: Path, args) -> None:
    folder = write_folder(work / "imgs", n_train=400, n_test=80)
    reference, _ = job(part, folder, work, "reference", None, 0)
    r = rng(args.seed, "lostnode")
    for lose in ("worker", "node"):
        at = r.randrange(4, 16, 2)  # B's worker stops at its step ``at`` (a checkpoint every 2)
        out, text = job(part, folder, work, f"lost-{lose}", lose, at)
        resumed = "resuming" in text
        part.check(resumed, f"lost {lose}: the group never resumed from a checkpoint")
        part.same_run(reference, out, f"lost {lose}")
        line = next((x for x in text.splitlines() if "resuming" in x), "")
        print(f"  lost {lose} at step {at}: {line.strip()}", flush=True)
        part.notes[f"lost_{lose}"] = {"at_step": at, "resumed": line.strip()}


def main(argv: list[str] | None = None) -> Part:
    return part_main("lostnode", __doc__, argv, body, seed=0)


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
