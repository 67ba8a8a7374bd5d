"""How an editor starts a local engine (protocol.launch): where its output goes."""

from __future__ import annotations

import stat
import sys
import tempfile
from pathlib import Path

import pytest

from protocol import launch


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / "wordbrush"


@pytest.mark.skipif(sys.platform == "win32", reason="XDG_RUNTIME_DIR and modes are POSIX")
def test_the_log_lives_in_the_users_own_folder(runtime: Path) -> None:
    """Not a fixed name in the shared temp folder, where another user's file would stop
    the start."""
    log = launch.engine_log("krita")
    assert log == runtime / "krita-engine.log"
    assert not runtime.exists()  # naming it in a message creates nothing
    assert launch.engine_log("gimp", create=True).parent == runtime
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert log.parent != Path(tempfile.gettempdir())


def test_the_child_writes_to_the_log_and_a_long_log_moves_aside(runtime: Path) -> None:
    log = launch.engine_log("gimp", create=True)
    log.write_bytes(b"x" * (launch.LOG_KEEP_BYTES + 1))
    proc = launch.launch_detached([sys.executable, "-c", "print('engine says hello')"], log)
    assert proc.wait(30) == 0
    assert log.read_text().strip() == "engine says hello"
    assert log.with_name("gimp-engine.log.1").stat().st_size == launch.LOG_KEEP_BYTES + 1
    # a short log is appended to
    proc = launch.launch_detached([sys.executable, "-c", "print('again')"], log)
    assert proc.wait(30) == 0
    assert log.read_text().split() == ["engine", "says", "hello", "again"]
