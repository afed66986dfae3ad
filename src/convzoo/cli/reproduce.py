"""``convzoo reproduce``: the book's table, cell by cell, and its report."""

from __future__ import annotations

import argparse

from ..catalog import PROFILES


def _names(text: str) -> list[str] | None:
    names = [t.strip() for t in text.split(",") if t.strip()]
    return None if names in ([], ["all"]) else names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the book's results table (and beat it), with a report",
        description="Train every cell of the book's table (model x recipe x seed) as an "
        "ordinary run under --out, skipping finished cells and resuming cut ones, then write "
        "report.md and report.html there. Started again, it goes on where it stopped.",
    )
    p.add_argument(
        "--profile",
        default="auto",
        choices=("auto", *PROFILES),
        help="book: the book's settings (for a GPU); cpu: the whole table in about 45 minutes "
        "on 2 cores; smoke: seconds; auto (default): book with a GPU, else cpu",
    )
    p.add_argument("--models", default="all", help="all (default) or a list, e.g. lenet,nin")
    p.add_argument("--recipes", default="", help="default: the profile's (d2l,fast)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: profile's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="output folder (default runs/reproduce-PROFILE)")
    p.add_argument("--data-dir", default=None, help="where data sets are kept")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="train the cells in this process instead of one process each (saves start-up)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="cells trained at once, each its own process (default: the profile's; 2 for cpu, "
        "each with one thread; 3 for book, to keep a GPU busy)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only write the report of what --out holds"
    )
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce import default_out, reproduce, write_report
    from ..runtime import resolve_device

    profile = args.profile
    if profile == "auto":
        profile = "book" if resolve_device(args.device).type == "cuda" else "cpu"
        print(f"profile {profile} (for this machine; choose with --profile)", flush=True)
    if args.report_only:
        md, page = write_report(args.out or default_out(profile))
        print(f"report: {md}, {page}")
        return 0
    failed, md, page = reproduce(
        profile,
        models=_names(args.models),
        recipes=_names(args.recipes),
        seeds=args.seeds,
        device=args.device,
        out=args.out,
        data_dir=args.data_dir,
        in_process=args.in_process,
        jobs=args.jobs,
    )
    print(f"report: {md}, {page}", flush=True)
    return 1 if failed else 0
