"""Running GIMP 3 in its Debian trixie chroot (built by .ci/gimp-chroot.sh): the mounts it
needs, the command line, and a shared folder with the plug-in installed as install.py
installs it. Used by tests/test_gimp_real.py and scripts/gimp_dialog_screenshot.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("WORDBRUSH_GIMP_ROOT", "/opt/gimp-trixie"))


def privileged() -> list[str] | None:
    """The prefix that runs mount/chroot: none as root, ``sudo -n`` where that works."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def why_no_gimp(gui: bool = False) -> str | None:
    """Why GIMP cannot run here (None: it can)."""
    program = "gimp-3.0" if gui else "gimp-console-3.0"
    if not (ROOT / "usr/bin" / program).exists():
        return (f"no GIMP 3 chroot at {ROOT} (.ci/run builds one with .ci/gimp-chroot.sh "
                f"{ROOT} where it has root)")
    if privileged() is None:
        return "running GIMP in its chroot needs root or passwordless sudo"
    return None


def prepare_share(name: str = "wb") -> tuple[Path, list[str]]:
    """``ROOT/name`` (``/name`` inside the chroot), emptied, owned by this user, with the
    plug-in installed into its GIMP profile; and the privilege prefix."""
    sys.path.insert(0, str(REPO))
    import install

    sudo = privileged() or []
    share = ROOT / name
    # the engine (this user) and GIMP (root in the chroot) share this folder
    subprocess.run([*sudo, "rm", "-rf", str(share)], check=True)
    subprocess.run([*sudo, "install", "-d", "-o", str(os.getuid()), str(share)], check=True)
    install.install_gimp(install.GimpInstall("linux", share / "profile" / "plug-ins", "3.13",
                                             "manylinux_2_28_x86_64"))
    return share, sudo


@contextlib.contextmanager
def mounted(sudo: list[str], binds: Sequence[str] = ()) -> Iterator[None]:
    """/proc and /dev (and each of ``binds``, a host folder at the same path) inside the
    chroot while in the block."""
    done: list[Path] = []
    try:
        mounts = [("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])]
        mounts += [(path.lstrip("/"), ["--bind", path]) for path in binds]
        for what, mount in mounts:
            target = ROOT / what
            subprocess.run([*sudo, "mkdir", "-p", str(target)], check=True)
            subprocess.run([*sudo, "mount", *mount, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run([*sudo, "umount", "-l", str(target)], check=False)


def gimp_command(sudo: list[str], share: str, batch: str, gui: bool = False,
                 env: dict[str, str] | None = None) -> list[str]:
    """GIMP in the chroot with a profile in ``/share`` running ``batch`` (Python code,
    through python-fu-eval); the console GIMP quits after it."""
    base = {"HOME": f"/{share}", "GIMP3_DIRECTORY": f"/{share}/profile",
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **(env or {})}
    program = ["gimp-3.0", "--no-splash"] if gui else ["gimp-console-3.0", "-i"]
    return [*sudo, shutil.which("chroot") or "/usr/sbin/chroot", str(ROOT), "/usr/bin/env",
            "-i", *(f"{k}={v}" for k, v in base.items()), *program,
            "--batch-interpreter", "python-fu-eval", "-b", batch,
            *([] if gui else ["--quit"])]
