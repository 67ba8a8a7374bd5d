"""Engine process faults: killed mid-job, restarted, stopped by SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from protocol.errors import EngineRejected, EngineUnavailable, ErrorCode, Timeout
from tests.support.engine import EngineProcess
from tests.test_server import _request


def test_engine_killed_mid_job_is_reported(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    client = engine.client(reconnect_grace=1.0, progress_timeout=5.0)
    try:
        job = client.submit(_request(params={"steps": 500, "delay": 0.02}))
        deadline = time.monotonic() + 10
        while not client.poll(0.1):
            assert time.monotonic() < deadline
        engine.proc.kill()
        engine.proc.wait()
        start = time.monotonic()
        with pytest.raises((EngineUnavailable, Timeout)):
            client.wait(job)
        assert time.monotonic() - start < 8
    finally:
        client.close()
        engine.stop()


def test_restarted_engine_says_the_job_is_gone(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    client = engine.client(reconnect_grace=20.0, progress_timeout=20.0)
    try:
        job = client.submit(_request(params={"steps": 500, "delay": 0.02}))
        time.sleep(0.5)
        engine.proc.kill()
        engine.proc.wait()
        engine = EngineProcess(tmp_path)  # same endpoint, fresh process
        with pytest.raises(EngineRejected) as info:
            client.wait(job)  # the client asks after its job once reconnected
        assert info.value.code is ErrorCode.UNKNOWN_JOB
    finally:
        client.close()
        engine.stop()


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    socket_file = Path(engine.endpoint[len("ipc://"):])
    assert socket_file.exists()
    engine.proc.send_signal(signal.SIGTERM)
    assert engine.proc.wait(15) == 0
    assert not socket_file.exists()
    assert "engine stopped" in engine.log.read_text()
