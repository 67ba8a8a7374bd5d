#!/usr/bin/env python3
"""Set up wordbrush on this machine (standard library only, Python >= 3.10).

    python3 install.py              the engine in ./.venv (torch, open_clip, pyzmq, ...)
    python3 install.py --dev        the same plus the test tools (pytest, hypothesis, ruff)
    python3 install.py --check      what is installed, and whether the engine answers
    python3 install.py --krita      also install the Krita plugin (done by default when
                                    Krita is found)

The Krita plugin goes into Krita's user plugin folder (``pykrita``) with ``protocol/`` and
pyzmq + msgpack built for Krita's own Python vendored next to it, is enabled in
``kritarc``, and is told how to start this engine. The GIMP 3 plug-in goes into GIMP's
``plug-ins/wordbrush/`` folder the same way. ``--endpoint``, ``--server-key`` and
``--client-key`` point both at a remote engine instead (``--help``).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: a known-good pair on CPU-only Linux x86_64; elsewhere pip resolves a matching pair
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def torch_requirements() -> list[str]:
    if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
        return TORCH_PINS
    return ["torch", "torchvision"]


#: what a first engine install writes: torch's CUDA build (about 5.6 GB in the venv on
#: x86_64 Linux) plus the wheels pip unpacks on the way
ENGINE_INSTALL_BYTES = 7 * 1024**3


class InstallError(RuntimeError):
    """A sentence for the user; what was installed before stays as it was."""


class NotEnoughDisk(InstallError):
    """Raised before pip starts, so a full disk is a sentence and not a half-made venv."""


def venv_runs(*args: str) -> bool:
    """Whether the venv's python runs ``args`` and exits 0 (False without a venv)."""
    py = venv_python()
    return py.exists() and subprocess.run([str(py), *args], capture_output=True).returncode == 0


def torch_installed() -> bool:
    return venv_runs("-c", "import torch")


def torch_present() -> bool:
    """Whether the venv has torch at all (installed, whether or not it imports): a
    plugins-only venv has none; a broken engine has one that fails to import."""
    return venv_runs("-c", "import importlib.util, sys; "
                     "sys.exit(importlib.util.find_spec('torch') is None)")


def check_disk_space(needed: int = ENGINE_INSTALL_BYTES) -> None:
    """Refuse a first install where torch cannot fit: pip would fail half way with
    ``No space left on device`` after minutes of downloading."""
    if torch_installed():
        return
    free = shutil.disk_usage(VENV.parent).free
    if free < needed:
        raise NotEnoughDisk(
            f"installing the engine needs about {needed / 1024**3:.0f} GB free on the disk "
            f"of {VENV.parent} (torch alone is about 5.6 GB); only {free / 1024**3:.1f} GB "
            f"is free. Free some space, or install only the plugins (--plugins-only) and "
            f"use an engine on another machine."
        )


def make_venv() -> None:
    """``.venv`` with pip. A venv left without pip (ensurepip failed part way, as it does on
    Debian and Ubuntu without ``python3-venv``) is made again, not reused forever."""
    if venv_runs("-m", "pip", "--version"):
        return
    print(f"creating {VENV}")
    try:
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    except subprocess.CalledProcessError:
        shutil.rmtree(VENV, ignore_errors=True)
        raise InstallError(
            f"could not create {VENV} with pip (ensurepip failed); on Debian or Ubuntu "
            "install the python3-venv package (`sudo apt install python3-venv`) and run "
            "install.py again") from None


def install_engine(dev: bool, cluster: bool = False) -> None:
    """The engine in .venv; ``dev`` adds the test tools (Ray Serve among them, for the
    cluster tests), ``cluster`` Ray Serve (``wordbrush serve --cluster``)."""
    check_disk_space()
    make_venv()
    py = str(venv_python())
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    # no wheel cache: it would hold a second copy of torch's gigabytes
    run([py, "-m", "pip", "install", "--quiet", "--no-cache-dir", *torch_requirements()])
    extras = [name for name, wanted in (("test", dev), ("cluster", cluster)) if wanted]
    target = f".[{','.join(extras)}]" if extras else "."
    run([py, "-m", "pip", "install", "--quiet", "-e", target])
    print(f"engine installed: {VENV / 'bin' / 'wordbrush'}")


# ------------------------------------------------------------------------------ Krita

KRITA_PLUGIN = ROOT / "plugins" / "krita"
VENDORED_WHEELS = ["pyzmq>=25", "msgpack>=1.0"]


@dataclass
class KritaInstall:
    """Where one Krita keeps its user plugins and settings, and which Python it embeds."""

    kind: str  # "linux", "flatpak", "windows", "macos"
    pykrita: Path
    kritarc: Path
    python: str  # "3.11"
    platform_tag: str  # pip --platform


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def krita_default(home: Path | None = None) -> KritaInstall:
    """Where this platform's own Krita (not a Flatpak) keeps its user plugins, whether or
    not it has run yet: what ``--krita`` installs into when no Krita was found."""
    home = home or _home()
    if sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        local = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return KritaInstall("windows", appdata / "krita" / "pykrita", local / "kritarc",
                            "3.10", "win_amd64")
    if sys.platform == "darwin":
        support = home / "Library" / "Application Support" / "krita"
        return KritaInstall("macos", support / "pykrita",
                            home / "Library" / "Preferences" / "kritarc", "3.10",
                            "macosx_11_0_universal2")
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    # Debian/Ubuntu's Krita embeds the system Python
    return KritaInstall("linux", data / "krita" / "pykrita", config / "kritarc",
                        _system_python_version(), f"manylinux2014_{platform.machine()}")


def krita_installs(home: Path | None = None) -> list[KritaInstall]:
    """The Krita installations found for this user (executables or existing folders)."""
    home = home or _home()
    found: list[KritaInstall] = []
    default = krita_default(home)
    settings_folder = default.pykrita.parent
    if sys.platform == "darwin":
        present = settings_folder.is_dir() or Path("/Applications/krita.app").is_dir()
    else:
        present = settings_folder.is_dir() or bool(shutil.which("krita"))
    if present:
        found.append(default)
    flatpak = home / ".var" / "app" / "org.kde.krita"
    if sys.platform.startswith("linux") and flatpak.is_dir():
        found.append(KritaInstall("flatpak", flatpak / "data" / "krita" / "pykrita",
                                  flatpak / "config" / "kritarc", "3.11",
                                  f"manylinux2014_{platform.machine()}"))
    return found


def _system_python_version() -> str:
    for exe in ("/usr/bin/python3", shutil.which("python3") or ""):
        if exe and Path(exe).exists():
            out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                return out.stdout.strip()
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def engine_command() -> list[str]:
    exe = VENV / ("Scripts/wordbrush.exe" if sys.platform == "win32" else "bin/wordbrush")
    return [str(exe), "serve"]


def plugin_settings(kept: dict[str, Any], remote: dict[str, str] | None) -> dict[str, Any]:
    """A plug-in's ``wordbrush.json``: what the user had, the command that starts this
    checkout's engine, and a remote engine's endpoint and keys: added to the plug-in's
    named engines (``protocol.engines``: switched in the docker's drop-down) and chosen,
    which switches starting a local engine off."""
    from protocol.engines import NamedEngine, add_engine

    settings = {**kept, "engine_command": engine_command()}
    if remote and remote.get("endpoint"):
        fields = {k: v for k, v in remote.items() if k != "name"}
        settings = {**add_engine(settings, NamedEngine(remote.get("name") or
                                                       engine_name(remote["endpoint"]),
                                                       **fields)), **fields}
        settings["autostart"] = False
    return settings


def engine_name(endpoint: str) -> str:
    """The name an engine added by ``--endpoint`` gets without ``--engine-name``: its host."""
    rest = endpoint.split("://", 1)[-1]
    return (rest.rsplit(":", 1)[0] if ":" in rest else rest).strip("[]") or "remote"


def vendor_into(vendor: Path, python: str, platform_tag: str) -> None:
    """``protocol/`` plus pyzmq and msgpack wheels built for an editor's own Python."""
    shutil.copytree(ROOT / "protocol", vendor / "protocol", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip_python = str(venv_python()) if venv_python().exists() else sys.executable
    abi = "cp" + python.replace(".", "")
    run([pip_python, "-m", "pip", "install", "--quiet", "--target", str(vendor),
         "--python-version", python, "--implementation", "cp", "--abi", abi,
         "--platform", platform_tag, "--only-binary=:all:", "--no-deps", "--upgrade",
         *VENDORED_WHEELS])


SETTINGS_FILE = "wordbrush.json"


def read_settings(path: Path) -> dict[str, Any] | None:
    """A plug-in's settings file as a dict; None where it is absent, unreadable, or not a
    JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable, not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def carried_settings(old: Path, new: Path) -> dict[str, Any]:
    """The user's settings in the installed plug-in folder ``old``, for the new one. A file
    that is not a JSON object is not lost: it goes to ``new`` as ``wordbrush.json.bad``
    (as the Krita plugin keeps one), with a warning; so does a ``.bad`` the plug-in kept."""
    kept_bad = old / (SETTINGS_FILE + ".bad")
    if kept_bad.is_file():
        shutil.copy2(kept_bad, new / kept_bad.name)
    path = old / SETTINGS_FILE
    if not path.is_file():
        return {}
    data = read_settings(path)
    if data is not None:
        return data
    shutil.copy2(path, new / (SETTINGS_FILE + ".bad"))
    print(f"warning: {path} is not a settings file install.py can read; it is kept as "
          f"{SETTINGS_FILE}.bad beside the new one, which has install.py's settings only")
    return {}


def _remove(path: Path, ignore_errors: bool = False) -> None:
    """A folder and what it holds; a symlink (a developer's link to a checkout) as a link."""
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=ignore_errors)


def replace_plugin(folder: Path, fill: Callable[[Path], None],
                   remote: dict[str, str] | None) -> None:
    """Build a plug-in folder beside ``folder`` (``fill`` puts the code and the vendored
    packages in it), carry the user's settings over, and swap it in only once complete: a
    failure (pip offline, a full disk) leaves the installed plug-in and its settings as
    they were."""
    staging = folder.with_name(f".{folder.name}.installing")
    old = folder.with_name(f".{folder.name}.old")
    if old.exists() and not folder.exists():  # a swap cut short: that is the plug-in
        old.rename(folder)
    for leftover in (staging, old):
        _remove(leftover)
    try:
        fill(staging)
        settings = plugin_settings(carried_settings(folder, staging), remote)
        (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n",
                                             encoding="utf-8")
        if folder.exists():
            folder.rename(old)
        try:
            staging.rename(folder)
        except OSError:
            if old.exists():
                old.rename(folder)
            raise
        _remove(old, ignore_errors=True)  # the new plug-in is in place already
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_krita(target: KritaInstall, remote: dict[str, str] | None = None) -> Path:
    """Copy the plugin, vendor protocol + pyzmq + msgpack, enable it, write its settings."""
    dest = target.pykrita
    dest.mkdir(parents=True, exist_ok=True)
    package = dest / "wordbrush"

    def fill(staging: Path) -> None:
        shutil.copytree(KRITA_PLUGIN / "wordbrush", staging,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor",
                                                      SETTINGS_FILE + "*"))
        vendor_into(staging / "vendor", target.python, target.platform_tag)

    replace_plugin(package, fill, remote)
    shutil.copy2(KRITA_PLUGIN / "wordbrush.desktop", dest / "wordbrush.desktop")
    enable_in_kritarc(target.kritarc)
    print(f"Krita plugin installed in {package} (Krita's Python {target.python})")
    return package


def enable_in_kritarc(kritarc: Path) -> None:
    config = configparser.ConfigParser(interpolation=None, strict=False)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    if kritarc.is_file():
        config.read(kritarc, encoding="utf-8")
    if not config.has_section("python"):
        config.add_section("python")
    if config.get("python", "enable_wordbrush", fallback="") == "true":
        return
    config.set("python", "enable_wordbrush", "true")
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    with open(kritarc, "w", encoding="utf-8") as f:
        config.write(f, space_around_delimiters=False)


# ------------------------------------------------------------------------------- GIMP

GIMP_PLUGIN = ROOT / "plugins" / "gimp" / "wordbrush"


@dataclass
class GimpInstall:
    kind: str
    plug_ins: Path  # GIMP's user plug-ins folder for 3.0
    python: str
    platform_tag: str


def gimp_installs(home: Path | None = None) -> list[GimpInstall]:
    """GIMP 3 installations for this user (an executable or an existing profile)."""
    home = home or _home()
    found: list[GimpInstall] = []
    if sys.platform.startswith("linux"):
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        tag = f"manylinux_2_28_{platform.machine()}"
        if shutil.which("gimp-3.0") or shutil.which("gimp-console-3.0") or \
                (config / "GIMP" / "3.0").is_dir():
            # Debian's GIMP 3 runs plug-ins with the system Python (trixie: 3.13)
            found.append(GimpInstall("linux", config / "GIMP" / "3.0" / "plug-ins",
                                     _system_python_version(), tag))
        flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
        if flatpak.is_dir():
            found.append(GimpInstall("flatpak", flatpak / "plug-ins", "3.12", tag))
    elif sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        if (appdata / "GIMP" / "3.0").is_dir():
            found.append(GimpInstall("windows", appdata / "GIMP" / "3.0" / "plug-ins", "3.12",
                                     "win_amd64"))
    elif sys.platform == "darwin":
        support = home / "Library" / "Application Support" / "GIMP" / "3.0"
        if support.is_dir():
            found.append(GimpInstall("macos", support / "plug-ins", "3.12",
                                     "macosx_11_0_universal2"))
    return found


def install_gimp(target: GimpInstall, remote: dict[str, str] | None = None) -> Path:
    """The plug-in folder (folder name = file name, executable), vendored dependencies,
    and ``wordbrush.json`` with the engine to use (kept across reinstalls)."""
    folder = target.plug_ins / "wordbrush"
    folder.parent.mkdir(parents=True, exist_ok=True)

    def fill(staging: Path) -> None:
        shutil.copytree(GIMP_PLUGIN, staging,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor",
                                                      SETTINGS_FILE + "*"))
        (staging / "wordbrush.py").chmod(0o755)
        vendor_into(staging / "vendor", target.python, target.platform_tag)

    replace_plugin(folder, fill, remote)
    print(f"GIMP plug-in installed in {folder} (GIMP's Python {target.python})")
    return folder


def disable_in_kritarc(kritarc: Path) -> None:
    if not kritarc.is_file():
        return
    config = configparser.ConfigParser(interpolation=None, strict=False)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read(kritarc, encoding="utf-8")
    if config.has_option("python", "enable_wordbrush"):
        config.remove_option("python", "enable_wordbrush")
        with open(kritarc, "w", encoding="utf-8") as f:
            config.write(f, space_around_delimiters=False)


def check() -> int:
    """What is installed where, and what to run; 1 where something is broken or missing."""
    ok = check_engine()
    for krita in krita_installs():
        ok &= check_plugin(f"Krita ({krita.kind}, Python {krita.python}): plugin",
                           krita.pykrita / "wordbrush", "python3 install.py --krita")
    for gimp in gimp_installs():
        ok &= check_plugin(f"GIMP 3 ({gimp.kind}, Python {gimp.python}): plug-in",
                           gimp.plug_ins / "wordbrush", "python3 install.py")
    return 0 if ok else 1


def check_plugin(label: str, folder: Path, fix: str) -> bool:
    if not (folder / "vendor" / "zmq").is_dir():
        print(f"{label} NOT installed in {folder}; run: {fix}")
        return False
    settings = read_settings(folder / SETTINGS_FILE)
    if settings is None:
        print(f"{label} installed in {folder}, but its {SETTINGS_FILE} is missing or "
              f"damaged; run: {fix}")
        return False
    from protocol.engines import chosen_engine, engine_list

    try:
        engine = chosen_engine(settings)
    except ValueError as exc:
        print(f"{label} installed in {folder}, but {exc}; run: {fix}")
        return False
    uses = "the local engine" if engine.is_local else f"{engine.name} ({engine.endpoint})"
    start = " (started when needed)" if settings.get("autostart", True) and \
        engine.is_local else ""
    others = [e.name for e in engine_list(settings) if e != engine]
    print(f"{label} installed in {folder}; uses {uses}{start}"
          + (f"; also knows {', '.join(others)}" if others else ""))
    return True


def check_engine() -> bool:
    py = venv_python()
    if not py.exists():
        print(f"engine: NOT installed (no {py}); run: python3 install.py")
        return False
    if not torch_present():
        print(f"engine: not installed here ({VENV} has the plugins' tools only, as "
              "--plugins-only makes it); for a local engine run: python3 install.py")
        return True
    probe = subprocess.run(
        [str(py), "-c", "import torch, open_clip, zmq, msgpack, engine; "
         "print(torch.__version__, open_clip.__version__, zmq.__version__, engine.__version__)"],
        capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"engine: BROKEN venv ({probe.stderr.strip().splitlines()[-1:]}); "
              "run: python3 install.py")
        return False
    torch_v, clip_v, zmq_v, engine_v = probe.stdout.split()
    print(f"engine {engine_v} in {VENV} (torch {torch_v}, open_clip {clip_v}, pyzmq {zmq_v})")
    faces = subprocess.run([str(py), "-c", "from engine.faces import face_models; face_models()"],
                           capture_output=True, text=True)
    if faces.returncode == 0:
        print("faces (packs with the ffhq framing): dlib and its landmark model load")
    else:
        print("faces (packs with the ffhq framing): MISSING; run: .venv/bin/pip install "
              "dlib-bin face-recognition-models")
    answer = subprocess.run([str(py), "-m", "engine", "info", "--timeout", "2"],
                            capture_output=True, text=True)
    if answer.returncode == 0:
        print("engine answers:", answer.stdout.splitlines()[0])
    else:
        print("no engine running (start one with: .venv/bin/wordbrush serve)")
    packs = subprocess.run([str(py), "-m", "engine", "packs"], capture_output=True, text=True)
    print("packs:", packs.stdout.strip() or packs.stderr.strip())
    return True


def remote_settings(args: argparse.Namespace) -> dict[str, str]:
    """The plugins' engine settings from --endpoint / --server-key / --client-key (and
    --engine-name, the name it gets in their list)."""
    out: dict[str, str] = {}
    if args.endpoint:
        out["endpoint"] = args.endpoint
        if getattr(args, "engine_name", None):
            out["name"] = args.engine_name
    for flag in ("server_key", "client_key"):
        value = getattr(args, flag)
        if value:
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                raise SystemExit(f"--{flag.replace('_', '-')}: {path} does not exist")
            out[flag] = str(path)
    if bool(out.get("server_key")) != bool(out.get("client_key")):
        raise SystemExit("give both --server-key (the engine's server.key) and --client-key "
                         "(this machine's NAME.key_secret)")
    return out


def install_plugins(args: argparse.Namespace, settings: dict[str, str]) -> None:
    targets = krita_installs()
    if args.krita and not targets:
        targets = [krita_default()]
    for target in targets:
        install_krita(target, settings)
    for gimp in gimp_installs():
        install_gimp(gimp, settings)
    if not targets and not gimp_installs():
        print("no Krita or GIMP 3 found for this user (use --krita to install the Krita "
              "plugin anyway)")


def uninstall() -> int:
    """Remove what install.py put in place: the plugin folders, the kritarc entry, .venv."""
    for krita in krita_installs():
        for path in (krita.pykrita / "wordbrush", krita.pykrita / "wordbrush.desktop"):
            if path.is_dir():
                shutil.rmtree(path)
                print(f"removed {path}")
            elif path.exists():
                path.unlink()
                print(f"removed {path}")
        disable_in_kritarc(krita.kritarc)
    for gimp in gimp_installs():
        folder = gimp.plug_ins / "wordbrush"
        if folder.exists():
            shutil.rmtree(folder)
            print(f"removed {folder}")
    if VENV.exists():
        shutil.rmtree(VENV)
        print(f"removed {VENV}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--cluster", action="store_true",
                        help="also install Ray Serve, for `wordbrush serve --cluster` (the "
                             "engine in front of several GPU boxes)")
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    parser.add_argument("--krita", action="store_true",
                        help="install the Krita plugin even if no Krita was detected")
    parser.add_argument("--engine-only", "--no-plugins", dest="engine_only",
                        action="store_true", help="the engine only (a headless GPU box)")
    parser.add_argument("--plugins-only", action="store_true",
                        help="the editor plugins only (an artist machine using a remote engine)")
    parser.add_argument("--endpoint", help="an engine the plugins use, e.g. tcp://HOST:47615: "
                                           "added to their named engines and chosen")
    parser.add_argument("--engine-name", help="its name in the plugins' engine list (default: "
                                              "its host)")
    parser.add_argument("--server-key", help="the remote engine's public key (server.key)")
    parser.add_argument("--client-key", help="this machine's secret key (NAME.key_secret)")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove everything install.py put in place")
    args = parser.parse_args()
    if sys.version_info < (3, 10):  # noqa: UP036 (this script may meet an older Python)
        print("wordbrush needs Python 3.10 or newer", file=sys.stderr)
        return 1
    if args.check:
        return check()
    if args.uninstall:
        return uninstall()
    if args.engine_only and args.plugins_only:
        print("--engine-only and --plugins-only exclude each other", file=sys.stderr)
        return 1
    if args.cluster and args.plugins_only:
        print("--cluster is for the engine; --plugins-only installs none", file=sys.stderr)
        return 1
    settings = remote_settings(args)
    try:
        if not args.plugins_only:
            install_engine(args.dev, args.cluster)
        else:  # pip for vendoring, without the engine
            make_venv()
        if not args.engine_only:
            install_plugins(args, settings)
    except InstallError as exc:
        print(f"install stopped: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"install failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}; what "
              "was installed before is as it was", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder in use (an editor running on Windows), permissions
        print(f"install failed: {exc}; what was installed before is as it was (close the "
              "editors and run install.py again)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
