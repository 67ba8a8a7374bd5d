#!/usr/bin/env python3
"""Set up wordbrush on this machine (standard library only, Python >= 3.10).

    python3 install.py              the engine in ./.venv (torch, open_clip, pyzmq, ...)
    python3 install.py --dev        the same plus the test tools (pytest, hypothesis, ruff)
    python3 install.py --check      what is installed, and whether the engine answers

The editor plugins (Krita, GIMP) and the remote-engine options are installed by later
versions of this script; today it installs and checks the engine.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import venv
from pathlib import Path

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


def install_engine(dev: bool) -> None:
    if not venv_python().exists():
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    py = str(venv_python())
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "--quiet", *torch_requirements()])
    target = ".[test]" if dev else "."
    run([py, "-m", "pip", "install", "--quiet", "-e", target])
    print(f"engine installed: {VENV / 'bin' / 'wordbrush'}")


def check() -> int:
    ok = True
    py = venv_python()
    if not py.exists():
        print(f"engine: NOT installed (no {py}); run: python3 install.py")
        return 1
    probe = subprocess.run(
        [str(py), "-c", "import torch, open_clip, zmq, msgpack, engine; "
         "print(torch.__version__, open_clip.__version__, zmq.__version__, engine.__version__)"],
        capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"engine: BROKEN venv ({probe.stderr.strip().splitlines()[-1:]}); "
              "run: python3 install.py")
        return 1
    torch_v, clip_v, zmq_v, engine_v = probe.stdout.split()
    print(f"engine {engine_v} in {VENV} (torch {torch_v}, open_clip {clip_v}, pyzmq {zmq_v})")
    answer = subprocess.run([str(py), "-m", "engine", "info", "--timeout", "2"],
                            capture_output=True, text=True)
    if answer.returncode == 0:
        print("engine answers:", answer.stdout.splitlines()[0])
    else:
        print("no engine running (start one with: .venv/bin/wordbrush serve)")
    packs = subprocess.run([str(py), "-m", "engine", "packs"], capture_output=True, text=True)
    print("packs:", packs.stdout.strip() or packs.stderr.strip())
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args()
    if sys.version_info < (3, 10):  # noqa: UP036 (this script may meet an older Python)
        print("wordbrush needs Python 3.10 or newer", file=sys.stderr)
        return 1
    if args.check:
        return check()
    try:
        install_engine(args.dev)
    except subprocess.CalledProcessError as exc:
        print(f"install failed: {' '.join(exc.cmd)} exited {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
