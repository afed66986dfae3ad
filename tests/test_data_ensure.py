"""``convzoo data fetch``'s chain (data directory, packaged copy, download, Debian package, one
line saying what to run), on files the tests write and a fake machine: apt never really runs
(``Host`` fakes record the commands), downloads go to a closed local port or a silent one."""

import socket
import subprocess
import time
from pathlib import Path

import pytest
from torchvision.datasets import FashionMNIST

from convzoo.cli import main
from convzoo.data import ensure, files
from convzoo.data.ensure import ensure_dataset
from convzoo.data.system_package import Host, plan_apt_install
from convzoo.errors import DataError, DataNotFoundError
from data_files import isolate_data, write_idx

PACKAGE = "dataset-fashion-mnist"


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    isolate_data(tmp_path, monkeypatch)


class FakeMachine:
    """A machine for the apt step: which programs exist, our user id, each command's exit code
    (0 unless listed) and, for a successful ``apt-get install``, the package's files appear."""

    def __init__(self, tmp_path, *, euid=0, programs=("apt-get", "sudo"), fail=None, known=True):
        self.tmp_path, self.uid, self.programs = tmp_path, euid, set(programs)
        self.fail = dict(fail or {})  # command word -> (exit code, stderr)
        self.known = known
        self.calls: list[list[str]] = []

    def run(self, argv):
        argv = list(argv)
        self.calls.append(argv)
        words = argv[2:] if argv[:2] == ["sudo", "-n"] else argv
        key = " ".join(words[:2])
        if key == "apt-cache show" and not self.known:
            return subprocess.CompletedProcess(argv, 100, "", "E: No packages found")
        if key in self.fail:
            code, err = self.fail[key]
            return subprocess.CompletedProcess(argv, code, "", err)
        if key == "apt-get install":
            for split in ("train", "test"):
                write_idx(self.tmp_path / "system" / "fashion-mnist", split, 10, gz=True)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def host(self) -> Host:
        return Host(run=self.run, which=self.which, euid=lambda: self.uid)

    def which(self, name):
        return f"/usr/bin/{name}" if name in self.programs else None


def raw(tmp_path) -> Path:
    return tmp_path / "cache" / "FashionMNIST" / "raw"


def untouchable() -> Host:
    def refuse(*_):
        raise AssertionError("the machine was asked something")

    return Host(run=refuse, which=refuse, euid=refuse)


def test_data_already_there_installs_nothing_and_says_so(tmp_path):
    for split in ("train", "test"):
        write_idx(raw(tmp_path), split, 10)
    got = ensure_dataset(host=untouchable())
    assert got.folder == raw(tmp_path)
    assert got.line == f"fashion-mnist: already in {raw(tmp_path)}; nothing downloaded or installed"


def test_packaged_copy_is_used_before_any_download_or_install(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://never.invalid/"])  # would be noticed
    for split in ("train", "test"):
        write_idx(tmp_path / "system" / "fashion-mnist", split, 10, gz=True)
    got = ensure_dataset(host=untouchable())
    assert "copied from the packaged copy" in got.line and str(tmp_path / "system") in got.line
    assert sorted(p.name for p in raw(tmp_path).iterdir()) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]


def test_failed_download_leads_to_apt_as_root(tmp_path):
    machine = FakeMachine(tmp_path, euid=0)
    t = time.perf_counter()
    got = ensure_dataset(host=machine.host())
    assert time.perf_counter() - t < 10
    assert machine.calls == [
        ["apt-cache", "show", PACKAGE],
        ["apt-get", "install", "-y", "-qq", PACKAGE],
    ]
    assert "\n" not in got.line and f"installed Debian package {PACKAGE}" in got.line
    assert "not downloadable" in got.line and str(raw(tmp_path)) in got.line
    assert len(list(raw(tmp_path).iterdir())) == 4


def test_package_unknown_to_apt_updates_first_and_sudo_is_used_without_a_password(tmp_path):
    machine = FakeMachine(tmp_path, euid=1000, known=False)
    got = ensure_dataset(host=machine.host())
    assert machine.calls == [
        ["sudo", "-n", "true"],
        ["apt-cache", "show", PACKAGE],
        ["sudo", "-n", "apt-get", "update", "-qq"],
        ["sudo", "-n", "apt-get", "install", "-y", "-qq", PACKAGE],
    ]
    assert "`sudo -n apt-get update -qq`" in got.line


@pytest.mark.parametrize(
    "programs, sudo_ok, expected",
    [
        (("apt-get", "sudo"), False, f"run `sudo apt-get install -y {PACKAGE}`, then"),
        (("apt-get",), None, f"run `sudo apt-get install -y {PACKAGE}`, then"),
        (("sudo",), None, "connect this machine to the internet and run `convzoo data fetch"),
    ],
    ids=["sudo-asks-a-password", "no-sudo", "not-debian"],
)
def test_no_install_allowed_gives_one_line_saying_what_to_run(
    tmp_path, programs, sudo_ok, expected
):
    fail = {} if sudo_ok is None else {"true": (1, "sudo: a password is required")}
    machine = FakeMachine(tmp_path, euid=1000, programs=programs, fail=fail)
    with pytest.raises(DataError) as e:
        ensure_dataset(host=machine.host())
    msg = str(e.value)
    assert "\n" not in msg and expected in msg and "fashion-mnist not found" in msg
    assert str(raw(tmp_path)) in msg and "127.0.0.1:9" in msg  # where it looked, why no download
    assert not [c for c in machine.calls if "apt-get" in c or "apt-cache" in c]
    if sudo_ok is None:
        assert machine.calls == []


def test_apt_failure_is_one_clear_line_and_a_non_zero_exit(tmp_path, monkeypatch, capsys):
    machine = FakeMachine(
        tmp_path, fail={"apt-get install": (100, "E: Failed to fetch http://deb/x  404\n")}
    )
    monkeypatch.setattr(ensure, "Host", machine.host)  # the CLI's machine
    assert main(["data", "fetch"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"`apt-get install -y -qq {PACKAGE}` failed (exit 100: E: Failed to fetch" in err
    assert f"run `apt-get install -y {PACKAGE}` yourself" in err
    assert not raw(tmp_path).exists() or not any(raw(tmp_path).iterdir())


def test_cli_prints_the_one_line_of_what_it_did(tmp_path, monkeypatch, capsys):
    machine = FakeMachine(tmp_path)
    monkeypatch.setattr(ensure, "Host", machine.host)
    assert main(["data", "fetch"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"installed Debian package {PACKAGE}" in out
    assert main(["data", "fetch"]) == 0  # the second time: nothing to do
    assert "nothing downloaded or installed" in capsys.readouterr().out
    assert len(machine.calls) == 2


@pytest.mark.parametrize("how", ["offline", "install=False"])
def test_offline_or_no_install_never_runs_apt(tmp_path, monkeypatch, how):
    if how == "offline":
        monkeypatch.setenv("CONVZOO_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        ensure_dataset(install=how == "offline", host=untouchable())


def test_data_set_without_a_package_is_not_installed(tmp_path):
    with pytest.raises(DataNotFoundError, match="mnist not found"):
        ensure_dataset("mnist", host=untouchable())


def test_installed_package_whose_files_are_hidden_is_named(tmp_path, monkeypatch):
    machine = FakeMachine(tmp_path)
    monkeypatch.setenv("CONVZOO_SYSTEM_DATA", "")  # the package's folder is not searched
    with pytest.raises(DataError, match=f"installed {PACKAGE} .*, but fashion-mnist not found"):
        ensure_dataset(host=machine.host())


def test_plan_asks_sudo_only_when_not_root(tmp_path):
    root = FakeMachine(tmp_path, euid=0)
    assert plan_apt_install(PACKAGE, root.host()).prefix == () and root.calls == []
    user = FakeMachine(tmp_path, euid=1000)
    plan = plan_apt_install(PACKAGE, user.host())
    assert plan.prefix == ("sudo", "-n")
    assert plan.instruction == f"sudo apt-get install -y {PACKAGE}"


def test_silent_mirror_fails_within_the_download_timeout(tmp_path, monkeypatch):
    # a server that accepts the connection and never answers: without a socket timeout,
    # torchvision's urlopen waits forever and set-up hangs
    assert files.DOWNLOAD_TIMEOUT_S <= 10  # the real limit is a few seconds per mirror
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
        monkeypatch.setattr(files, "DOWNLOAD_TIMEOUT_S", 0.5)
        machine = FakeMachine(tmp_path, euid=1000, programs=("apt-get",))
        t = time.perf_counter()
        with pytest.raises(DataError, match="timed out"):
            ensure_dataset(host=machine.host())
        assert time.perf_counter() - t < 5
