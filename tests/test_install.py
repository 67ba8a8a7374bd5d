"""install.py puts the editor plugins in place in a fresh HOME, with dependencies built
for the editors' own Pythons (network: the package registry only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import install  # noqa: E402


def _python(version: str) -> str | None:
    for exe in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if Path(exe).exists():
            return exe
    return None


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_krita_plugin_installs_enables_and_imports(home: Path) -> None:
    target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                  home / ".config/kritarc", "3.11", "manylinux2014_x86_64")
    target.kritarc.parent.mkdir(parents=True)
    target.kritarc.write_text("[General]\nfoo=bar\n")
    package = install.install_krita(target)
    assert (target.pykrita / "wordbrush.desktop").is_file()
    assert (package / "vendor" / "protocol" / "client.py").is_file()
    assert (package / "vendor" / "zmq").is_dir() and (package / "vendor" / "msgpack").is_dir()
    rc = target.kritarc.read_text()
    assert "enable_wordbrush=true" in rc and "foo=bar" in rc
    settings = (package / "wordbrush.json").read_text()
    assert "serve" in settings
    # idempotent: a second run changes nothing in kritarc
    install.install_krita(target)
    assert target.kritarc.read_text() == rc
    py = _python("3.11")
    if py is None:
        pytest.skip("no Python 3.11 here to import the vendored packages with")
    probe = subprocess.run(
        [py, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import zmq, msgpack, "
         "protocol.client; print(zmq.zmq_version())", str(package / "vendor")],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                            if k != "PYTHONPATH"})
    assert probe.returncode == 0, probe.stderr


def test_gimp_plugin_installs_executable_with_cp313_wheels(home: Path) -> None:
    target = install.GimpInstall("linux", home / ".config/GIMP/3.0/plug-ins", "3.13",
                                 "manylinux_2_28_x86_64")
    folder = install.install_gimp(target)
    script = folder / "wordbrush.py"
    assert script.is_file() and os.access(script, os.X_OK)
    assert folder.name == script.stem
    assert (folder / "wordbrush_core.py").is_file()
    # built for GIMP's Python 3.13: msgpack's own cp313 build, pyzmq's stable-ABI wheel
    assert list((folder / "vendor" / "msgpack").glob("*cpython-313-x86_64-linux-gnu.so"))
    tags = "".join(p.read_text() for p in (folder / "vendor").glob("pyzmq-*/WHEEL"))
    assert "abi3" in tags or "cp313" in tags
    # told how to start this checkout's engine, as the Krita plugin is
    settings = json.loads((folder / "wordbrush.json").read_text())
    assert settings["engine_command"] == install.engine_command()


def test_remote_settings_and_uninstall(home: Path, tmp_path: Path, monkeypatch) -> None:
    server, client = tmp_path / "server.key", tmp_path / "artist.key_secret"
    server.write_text("x")
    client.write_text("y")
    args = install.argparse.Namespace(endpoint="tcp://box:47615", server_key=str(server),
                                      client_key=str(client))
    remote = install.remote_settings(args)
    assert remote == {"endpoint": "tcp://box:47615", "server_key": str(server.resolve()),
                      "client_key": str(client.resolve())}
    with pytest.raises(SystemExit, match="both"):
        install.remote_settings(install.argparse.Namespace(endpoint=None, server_key=str(server),
                                                           client_key=None))
    target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                  home / ".config/kritarc", "3.11", "manylinux2014_x86_64")
    package = install.install_krita(target, remote)
    settings = (package / "wordbrush.json").read_text()
    assert "tcp://box:47615" in settings and '"autostart": false' in settings
    gimp = install.install_gimp(install.GimpInstall(
        "linux", home / ".config/GIMP/3.0/plug-ins", "3.13", "manylinux_2_28_x86_64"), remote)
    assert json.loads((gimp / "wordbrush.json").read_text())["autostart"] is False
    # --uninstall removes the plugins and the kritarc entry, and nothing else
    monkeypatch.setattr(install, "krita_installs", lambda: [target])
    monkeypatch.setattr(install, "gimp_installs", lambda: [install.GimpInstall(
        "linux", home / ".config/GIMP/3.0/plug-ins", "3.13", "manylinux_2_28_x86_64")])
    monkeypatch.setattr(install, "VENV", tmp_path / "no-venv-here")
    (target.pykrita / "other_plugin.desktop").write_text("keep me")
    assert install.uninstall() == 0
    assert not (target.pykrita / "wordbrush").exists()
    assert not (target.pykrita / "wordbrush.desktop").exists()
    assert (target.pykrita / "other_plugin.desktop").read_text() == "keep me"
    assert "enable_wordbrush" not in target.kritarc.read_text()
    assert not (home / ".config/GIMP/3.0/plug-ins/wordbrush").exists()


def test_a_first_install_on_a_full_disk_stops_with_a_sentence(monkeypatch, capsys) -> None:
    """pip would die half way with ENOSPC after minutes of downloading torch."""
    monkeypatch.setattr(install, "torch_installed", lambda: False)
    free = 2 * 1024**3
    monkeypatch.setattr(install.shutil, "disk_usage", lambda _p: SimpleNamespace(free=free))
    ran: list[list[str]] = []
    monkeypatch.setattr(install, "run", ran.append)
    with pytest.raises(install.NotEnoughDisk, match=r"about 7 GB free .* only 2\.0 GB"):
        install.install_engine(dev=False)
    assert ran == []  # nothing was started
    monkeypatch.setattr(sys, "argv", ["install.py", "--engine-only"])
    assert install.main() == 1
    assert "install stopped: installing the engine needs" in capsys.readouterr().err


def test_the_disk_check_passes_once_torch_is_there(monkeypatch) -> None:
    monkeypatch.setattr(install, "torch_installed", lambda: True)
    monkeypatch.setattr(install.shutil, "disk_usage", lambda _p: SimpleNamespace(free=0))
    install.check_disk_space()  # an update needs no room for torch


def test_a_failed_reinstall_leaves_the_plugin_and_its_settings(home: Path, monkeypatch,
                                                               capsys) -> None:
    """pip offline on the second run: the installed plug-in, with the remote engine the
    user set up, is as it was, and the reason is one line."""
    target = install.GimpInstall("linux", home / "failing/plug-ins", "3.13",
                                 "manylinux_2_28_x86_64")
    monkeypatch.setattr(install, "vendor_into", lambda vendor, *_: vendor.mkdir(parents=True))
    folder = install.install_gimp(target, {"endpoint": "tcp://box:47615"})
    before = (folder / "wordbrush.json").read_text()

    def offline(vendor: Path, *_: object) -> None:
        raise subprocess.CalledProcessError(1, ["pip", "install"])

    monkeypatch.setattr(install, "vendor_into", offline)
    monkeypatch.setattr(install, "gimp_installs", lambda: [target])
    monkeypatch.setattr(install, "krita_installs", lambda: [])
    monkeypatch.setattr(install, "make_venv", lambda: None)
    monkeypatch.setattr(sys, "argv", ["install.py", "--plugins-only"])
    assert install.main() == 1
    assert "what was installed before is as it was" in capsys.readouterr().err
    assert (folder / "wordbrush.json").read_text() == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["wordbrush"]  # no leftovers


def test_damaged_settings_are_kept_aside_not_lost(home: Path, monkeypatch, capsys) -> None:
    target = install.GimpInstall("linux", home / "damaged/plug-ins", "3.13",
                                 "manylinux_2_28_x86_64")
    monkeypatch.setattr(install, "vendor_into", lambda vendor, *_: vendor.mkdir(parents=True))
    folder = install.install_gimp(target)
    for damaged in ('{"endpoint": "tcp://box:47615", ', "[1, 2]", "\xff\xfe"):
        (folder / "wordbrush.json").write_bytes(damaged.encode("latin-1"))
        install.install_gimp(target)
        assert (folder / "wordbrush.json.bad").read_bytes() == damaged.encode("latin-1")
        assert json.loads((folder / "wordbrush.json").read_text())["engine_command"]
        assert "kept as wordbrush.json.bad" in capsys.readouterr().out
    # a .bad the plug-in kept survives the next reinstall too
    install.install_gimp(target)
    assert (folder / "wordbrush.json.bad").is_file()


@pytest.mark.parametrize(("platform", "kind", "pykrita"), [
    ("darwin", "macos", "Library/Application Support/krita/pykrita"),
    ("win32", "windows", "AppData/Roaming/krita/pykrita"),
    ("linux", "linux", "xdg-data/krita/pykrita"),
])
def test_krita_without_a_krita_found_goes_where_that_platforms_krita_looks(
        tmp_path: Path, monkeypatch, platform: str, kind: str, pykrita: str) -> None:
    """``--krita`` before Krita's first start (Windows' installer is not on PATH)."""
    for var in ("APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(install.shutil, "which", lambda _name: None)
    assert install.krita_installs(tmp_path) == []
    target = install.krita_default(tmp_path)
    assert (target.kind, target.pykrita) == (kind, tmp_path / pykrita)


def test_a_venv_that_cannot_get_pip_is_a_sentence(tmp_path: Path, monkeypatch) -> None:
    """Debian without python3-venv: ensurepip fails after the venv's python exists; the
    half-made venv is removed, so the next run makes it again."""
    monkeypatch.setattr(install, "VENV", tmp_path / ".venv")

    class NoEnsurepip:
        def __init__(self, **_: object) -> None:
            pass

        def create(self, path: Path) -> None:
            (path / "bin").mkdir(parents=True)
            (path / "bin" / "python").write_text("")
            raise subprocess.CalledProcessError(1, ["python", "-m", "ensurepip"])

    monkeypatch.setattr(install.venv, "EnvBuilder", NoEnsurepip)
    with pytest.raises(install.InstallError, match="python3-venv"):
        install.make_venv()
    assert not (tmp_path / ".venv").exists()


def test_check_on_a_plugins_only_machine(home: Path, tmp_path: Path, monkeypatch,
                                         capsys) -> None:
    """No torch in the venv is what --plugins-only makes, not a broken engine; each
    plug-in says which engine it uses."""
    fake = tmp_path / "venv"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "python").write_text("")
    monkeypatch.setattr(install, "VENV", fake)
    monkeypatch.setattr(install, "torch_present", lambda: False)
    target = install.GimpInstall("linux", home / "check/plug-ins", "3.13",
                                 "manylinux_2_28_x86_64")
    monkeypatch.setattr(install, "vendor_into",
                        lambda vendor, *_: (vendor / "zmq").mkdir(parents=True))
    install.install_gimp(target, {"endpoint": "tcp://box:47615"})
    monkeypatch.setattr(install, "gimp_installs", lambda: [target])
    monkeypatch.setattr(install, "krita_installs", lambda: [])
    assert install.check() == 0
    out = capsys.readouterr().out
    assert "BROKEN" not in out and "not installed here" in out
    assert "uses box (tcp://box:47615)" in out and "also knows local" in out
    # torch there but failing to import (a cut-off pip run) is a broken engine, not that
    monkeypatch.setattr(install, "torch_present", lambda: True)
    (fake / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bin" / "python").chmod(0o755)
    assert install.check() == 1
    assert "BROKEN" in capsys.readouterr().out


def test_a_swap_cut_short_is_finished_not_lost(home: Path, monkeypatch) -> None:
    """Killed between moving the old plug-in aside and putting the new one in place: the
    next run takes the old one back, with the user's settings, before anything else."""
    target = install.GimpInstall("linux", home / "cut/plug-ins", "3.13",
                                 "manylinux_2_28_x86_64")
    monkeypatch.setattr(install, "vendor_into", lambda vendor, *_: vendor.mkdir(parents=True))
    folder = install.install_gimp(target, {"endpoint": "tcp://box:47615"})
    folder.rename(folder.with_name(".wordbrush.old"))
    install.install_gimp(target)
    assert json.loads((folder / "wordbrush.json").read_text())["endpoint"] == "tcp://box:47615"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["wordbrush"]
