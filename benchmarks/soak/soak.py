"""The soak suite: convzoo's promises tried at scale, in one command (``make soak``).

    python benchmarks/soak/soak.py [--only kills,fuzz,...] [--seed 0] [--work DIR]

Parts (each also runs alone): kills, fuzz, malicious, disk (root: a tmpfs), writers, lostnode.
It prints the table ``benchmarks/RESULTS.md`` records, writes ``soak.json`` in the work folder
and exits 1 if anything failed. About 22 minutes on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import disk
import fuzz
import kills
import lostnode
import malicious
import writers

PARTS = {
    "kills": kills,
    "fuzz": fuzz,
    "malicious": malicious,
    "disk": disk,
    "writers": writers,
    "lostnode": lostnode,
}


def tried(name: str, part) -> str:
    """What a part tried, in a few words, from its notes."""
    n = part.notes
    if name == "kills":
        landed = ", ".join(f"{k} {v}" for k, v in sorted(n.get("landed", {}).items()))
        return (
            f"{n.get('kills')} of {n.get('kills_planned')} SIGKILLs landed ({landed}; "
            f"{n.get('kills_with_tmp_file')} inside a save), each resumed; checkpoints bitwise "
            f"equal to the uninterrupted run's ({n.get('checkpoints_compared')} compared, "
            f"{n.get('checkpoints_new')} new), the end bitwise equal; + SIGTERM/SIGINT"
        )
    if name == "fuzz":
        kinds, cmp = n.get("by_kind", {}), n.get("compare", {})
        each = ", ".join(f"{k} {v['cases']}" for k, v in kinds.items())
        return (
            f"{sum(v['cases'] for v in kinds.values())} files ({each}); "
            f"{cmp.get('agree')}/{cmp.get('compared')} re-run as processes agree"
        )
    return {
        # a folder never opens a .gif, so the GIF bomb has 2 ways in and the others 5
        "malicious": f"{len(n.get('payload_kinds', []))} payload kinds x 13 ways in; "
        "4 bombs (3 x 5 ways in, the GIF x 2)",
        "disk": n.get("skipped") or "11 save points of a run + evaluate, data fetch, data info",
        "writers": "live run vs same --out / --auto-resume / --resume; races; stale locks",
    }.get(name, "lost worker, lost node (2 torchrun launches, --nnodes 2, gloo)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="convzoo-soak-"))
    results, t = {}, time.perf_counter()
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        extra = [] if name in ("malicious", "disk") else ["--seed", str(args.seed)]
        results[name] = PARTS[name].main(["--work", str(work / name), *extra])
    load = os.getloadavg()
    print(f"\nsoak suite, {_dt.date.today()}, {platform.machine()} x{os.cpu_count()}, "
          f"load {load[0]:.1f} at the end, {time.perf_counter() - t:.0f} s in all\n")  # fmt: skip
    print("| part | what was tried | checks | failures | time |")
    print("|---|---|---:|---:|---:|")
    for name, part in results.items():
        print(
            f"| {name} | {tried(name, part)} | {part.cases} | {len(part.failures)} | "
            f"{part.seconds / 60:.1f} min |"
        )
    (work / "soak.json").write_text(
        json.dumps({k: v.to_dict() for k, v in results.items()}, indent=2, default=str)
    )
    print(f"\nevery check and figure: {work / 'soak.json'}")
    return 1 if any(part.failures for part in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
