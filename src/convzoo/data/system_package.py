"""Installing a data set's Debian package: the last way ``convzoo data fetch`` gets data.

Why this exists: on a machine that reaches the package registries but nothing else,
torchvision's mirrors fail and a fresh clone's ``make run`` would stop at "fashion-mnist not
found". Debian packages Fashion-MNIST
(``dataset-fashion-mnist``: its IDX files in ``/usr/share/datasets/fashion-mnist``), so where
``apt-get`` exists and may be used without a password prompt (we are root, or ``sudo -n true``
succeeds) set-up installs it; anywhere else it names the one command to run. Nothing here runs
unless the data is in neither the data directory nor a packaged copy and the download failed.

The machine is reached only through :class:`Host` (run a command, find a program, our user
id), so the decisions are tested with fakes and never by running apt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import DataError

__all__ = ["AptPlan", "Host", "apt_install", "plan_apt_install"]

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_quietly(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` without a terminal, its output captured (set-up prints one line of its own;
    apt's last line of errors goes into ours when it fails)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # never a debconf prompt
    return subprocess.run(
        list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, check=False
    )


@dataclass(frozen=True)
class Host:
    """What the apt step asks of the machine; tests pass fakes."""

    run: Runner = field(default=run_quietly)
    which: Callable[[str], str | None] = field(default=shutil.which)
    euid: Callable[[], int] = field(default=os.geteuid)


@dataclass(frozen=True)
class AptPlan:
    """How ``package`` can be installed here. ``prefix`` is ``()`` as root, ``("sudo", "-n")``
    with password-less sudo and ``None`` when this process may not install packages."""

    package: str
    debian: bool
    prefix: tuple[str, ...] | None

    @property
    def allowed(self) -> bool:
        return self.debian and self.prefix is not None

    def command(self, *args: str) -> list[str]:
        return [*(self.prefix or ()), "apt-get", *args]

    @property
    def instruction(self) -> str:
        """The command a person runs to install the package (with sudo unless we are root)."""
        sudo = "" if self.prefix == () else "sudo "
        return f"{sudo}apt-get install -y {self.package}"


def plan_apt_install(package: str, host: Host | None = None) -> AptPlan:
    """Whether this machine is Debian-like (``apt-get`` on the ``PATH``) and we may install."""
    host = host or Host()
    debian = host.which("apt-get") is not None
    prefix: tuple[str, ...] | None = None
    if debian and host.euid() == 0:
        prefix = ()
    elif debian and host.which("sudo") and host.run(["sudo", "-n", "true"]).returncode == 0:
        prefix = ("sudo", "-n")  # -n: fail at once instead of waiting for a password
    return AptPlan(package, debian, prefix)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"


def apt_install(plan: AptPlan, host: Host | None = None) -> str:
    """Install ``plan.package`` (after ``apt-get update`` when apt does not know it, as in a
    container whose package lists were removed); the commands run, as one string. A failure is
    a :class:`DataError` naming the command, apt's last line and what to run instead."""
    if not plan.allowed:
        raise DataError(f"not allowed to install {plan.package}; run `{plan.instruction}`")
    host = host or Host()
    steps = []
    if host.run(["apt-cache", "show", plan.package]).returncode != 0:
        steps.append(plan.command("update", "-qq"))
    steps.append(plan.command("install", "-y", "-qq", plan.package))
    for argv in steps:
        done = host.run(argv)
        if done.returncode != 0:
            raise DataError(
                f"`{' '.join(argv)}` failed (exit {done.returncode}: "
                f"{_last_line(done.stderr or done.stdout or '')}); run `{plan.instruction}` "
                "yourself and then `convzoo data fetch` again"
            )
    return ", ".join(f"`{' '.join(argv)}`" for argv in steps)
