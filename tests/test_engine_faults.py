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


def test_an_io_loop_that_dies_stops_the_engine(tmp_path: Path, monkeypatch) -> None:
    """A bug in the I/O thread must not leave a process that looks alive and serves
    nothing: serve_forever ends with the error, so a supervisor restarts the engine."""
    import threading

    from engine.server import EngineServer, ServerConfig
    from protocol.errors import WordbrushError

    class NoRunner:
        def describe(self) -> dict:
            return {}

    def broken(self, router) -> None:
        raise RuntimeError("a bug in the I/O loop")

    monkeypatch.setattr(EngineServer, "_heartbeat", broken)
    server = EngineServer(NoRunner(), ServerConfig(endpoint=f"ipc://{tmp_path}/e.sock"))
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever(install_signals=False)
        except BaseException as exc:  # the test looks at it
            raised.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], WordbrushError)
    assert "stopped serving: RuntimeError: a bug in the I/O loop" in str(raised[0])


def test_a_hung_method_stops_the_heartbeats(tmp_path: Path, monkeypatch) -> None:
    """A method that never reports a step again (a GPU hang, a deadlock) must not keep its
    client waiting for ever on heartbeats the I/O thread sends whatever the worker does."""
    import threading

    from engine import server as server_module
    from engine.runner import JobPlan
    from engine.server import EngineServer, ServerConfig
    from protocol.client import EngineClient
    from protocol.events import Progress

    release = threading.Event()

    class HungRunner:
        def describe(self) -> dict:
            return {}

        def status(self) -> dict:
            return {}

        def plan(self, request) -> JobPlan:
            return JobPlan(method="hung", pack="none", params={}, seed=1)

        def run(self, job, progress):
            progress(0, 10, "starting", None)
            release.wait(60)  # hangs, reporting nothing
            raise RuntimeError("released")

    monkeypatch.setattr(server_module, "STALL_SECONDS", 1.0)
    server = EngineServer(HungRunner(), ServerConfig(endpoint=f"ipc://{tmp_path}/e.sock"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"install_signals": False},
                              daemon=True)
    thread.start()
    client = EngineClient(f"ipc://{tmp_path}/e.sock", progress_timeout=3.0)
    try:
        client.connect(timeout=10)
        job = client.submit(_request())
        deadline = time.monotonic() + 15  # heartbeats would keep it alive past this
        events: list = []
        with pytest.raises(Timeout, match=f"job {job}"):
            while time.monotonic() < deadline:
                events += client.poll(0.1)
                client.check_timeouts()
        assert time.monotonic() < deadline
        # still sent, flagged: a client that is gone is noticed by the engine
        assert any(isinstance(e, Progress) and e.stalled for e in events)
    finally:
        release.set()
        client.close()
        server.stop()
        thread.join(10)
