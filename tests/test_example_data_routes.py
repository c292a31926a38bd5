"""How the Fashion-MNIST loader obtains the data when no local place has it:
Debian's package through apt-get (as root or through passwordless sudo), then
Keras's download.

`apt-get` and `sudo` are stand-ins on PATH that record how they were called;
nothing is installed. The stand-in apt-get "installs" by copying a small data
set into the (redirected) Debian directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_examples import data_module, write_dataset

FAKE_APT_GET = """\
#!{python}
import json, os, shutil, sys, time
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["apt-get", *sys.argv[1:]]) + "\\n")
step = sys.argv[3]
behaviours = os.environ.get("FAKE_APT", "").split(",")
if "hang-" + step in behaviours:
    time.sleep(60)
if "fail-" + step in behaviours:
    print({{"update": "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease",
           "install": "E: Unable to locate package " + sys.argv[-1]}}[step])
    sys.exit(100)
if step == "install":
    shutil.copytree(os.environ["FAKE_PACKAGE"], os.environ["FAKE_DEBIAN_DIR"])
"""

FAKE_SUDO = """\
#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["sudo", *sys.argv[1:]]) + "\\n")
if sys.argv[1] != "-n" or os.environ.get("FAKE_SUDO") == "password":
    sys.exit("sudo: a password is required")
if sys.argv[2:] != ["true"]:
    os.execvp(sys.argv[2], sys.argv[2:])
"""

APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
UPDATE = [*APT_GET, "update", "-qq"]
INSTALL = [*APT_GET, "install", "-y", "-qq", "dataset-fashion-mnist"]


class Machine:
    """The stand-in commands on PATH, what they were asked, and the download attempts."""

    def __init__(self, root: Path):
        self.bin_dir, self.log, self.debian_dir = root / "bin", root / "calls.jsonl", root / "debian"
        self.bin_dir.mkdir()
        self.download_attempts = []

    def install(self, name: str, script: str) -> None:
        path = self.bin_dir / name
        path.write_text(script.format(python=sys.executable))
        path.chmod(0o755)

    def remove(self, name: str) -> None:
        (self.bin_dir / name).unlink()

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def offline_download(self):
        self.download_attempts.append(1)
        raise OSError("offline")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine without the data: empty Keras cache and Debian directory,
    stand-in apt-get on PATH (and nothing else), root, Keras's download offline."""
    machine = Machine(tmp_path)
    machine.install("apt-get", FAKE_APT_GET)
    write_dataset(tmp_path / "package")
    monkeypatch.setenv("PATH", str(machine.bin_dir))
    monkeypatch.setenv("FAKE_LOG", str(machine.log))
    monkeypatch.setenv("FAKE_PACKAGE", str(tmp_path / "package"))
    monkeypatch.setenv("FAKE_DEBIAN_DIR", str(machine.debian_dir))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data_module, "DEBIAN_DIR", machine.debian_dir)
    monkeypatch.setattr(data_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(data_module, "keras_download", machine.offline_download)
    return machine


def not_found(**kwargs) -> str:
    with pytest.raises(data_module.DataNotFoundError) as error:
        data_module.load_fashion_mnist(**kwargs)
    message = str(error.value)
    assert message.startswith("Fashion-MNIST was not found. Tried, in order:")
    return message


def test_as_root_it_runs_apt_get_update_then_install_and_reads_the_package(machine, capsys):
    loaded = data_module.load_fashion_mnist()
    assert loaded.source == str(machine.debian_dir)
    assert machine.calls() == [UPDATE, INSTALL]
    assert machine.download_attempts == []
    printed = capsys.readouterr().out
    assert "installing Debian's package dataset-fashion-mnist" in printed
    assert f"$ {' '.join(UPDATE)}\n" in printed and f"$ {' '.join(INSTALL)}\n" in printed


def test_without_root_it_uses_passwordless_sudo(machine, monkeypatch):
    monkeypatch.setattr(data_module.os, "geteuid", lambda: 1000)
    machine.install("sudo", FAKE_SUDO)
    assert data_module.load_fashion_mnist().source == str(machine.debian_dir)
    assert machine.calls() == [["sudo", "-n", "true"],
                               ["sudo", "-n", *UPDATE], UPDATE,
                               ["sudo", "-n", *INSTALL], INSTALL]


def test_sudo_that_asks_for_a_password_is_not_used(machine, monkeypatch):
    monkeypatch.setattr(data_module.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("FAKE_SUDO", "password")
    machine.install("sudo", FAKE_SUDO)
    message = not_found()
    assert machine.calls() == [["sudo", "-n", "true"]]
    assert ("Debian's package dataset-fashion-mnist through apt-get "
            "(not root, and sudo -n refused: sudo: a password is required)") in message
    assert "Keras's download (OSError: offline)" in message


def test_without_root_or_sudo_the_route_says_so(machine, monkeypatch):
    monkeypatch.setattr(data_module.os, "geteuid", lambda: 1000)
    assert "through apt-get (not root, and no sudo)" in not_found()
    assert machine.calls() == [] and machine.download_attempts == [1]


def test_without_apt_get_the_route_says_so(machine):
    machine.remove("apt-get")
    assert "through apt-get (no apt-get on this machine)" in not_found()


def test_a_failed_install_is_reported_and_the_download_tried_next(machine, monkeypatch):
    monkeypatch.setenv("FAKE_APT", "fail-install")
    message = not_found()
    assert machine.calls() == [UPDATE, INSTALL]
    assert ("through apt-get (apt-get install exited with 100: "
            "E: Unable to locate package dataset-fashion-mnist)") in message
    assert machine.download_attempts == [1]


def test_a_failed_update_does_not_stop_the_install(machine, monkeypatch):
    monkeypatch.setenv("FAKE_APT", "fail-update")
    assert data_module.load_fashion_mnist().source == str(machine.debian_dir)
    assert machine.calls() == [UPDATE, INSTALL]


def test_when_both_steps_fail_both_are_named(machine, monkeypatch):
    monkeypatch.setenv("FAKE_APT", "fail-update,fail-install")
    assert ("(apt-get install exited with 100: E: Unable to locate package dataset-fashion-mnist; "
            "apt-get update before it failed: E: Failed to fetch http://deb.debian.org/debian/dists/"
            "bookworm/InRelease)") in not_found()


def test_a_hanging_apt_get_is_stopped_after_the_time_limit(machine, monkeypatch):
    monkeypatch.setenv("FAKE_APT", "hang-update")
    monkeypatch.setattr(data_module, "APT_TIMEOUT_S", 1)
    assert f"through apt-get (`{' '.join(UPDATE)}` did not finish within 1 s)" in not_found()


def test_without_download_neither_route_is_tried(machine):
    message = not_found(download=False)
    assert machine.calls() == [] and machine.download_attempts == []
    assert "Debian's package dataset-fashion-mnist through apt-get (not attempted)" in message
    assert "Keras's download (not attempted)" in message


def test_an_explicit_data_dir_never_installs_anything(machine, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data_module.DataNotFoundError, match="--data-dir .*empty lacks"):
        data_module.load_fashion_mnist(data_dir=tmp_path / "empty")
    assert machine.calls() == [] and machine.download_attempts == []
