"""Hostile input and fault storms against a live engine (loopback, bounded in time):
10,000+ malformed messages, a cancel storm, and a client that never reads its results.
The engine must answer the next good request, stay alive and keep its memory bounded."""

from __future__ import annotations

import random
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from protocol.framing import MAGIC_FRAME, Message, encode
from tests.support.engine import EngineProcess
from tests.test_server import _request


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineProcess:
    proc = EngineProcess(tmp_path_factory.mktemp("reliability"), max_queue=4)
    yield proc
    proc.stop()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _hostile(rng: random.Random) -> list[bytes]:
    kind = rng.randrange(9)
    good = msgpack.packb({"type": "ping", "id": f"x{rng.random()}"})
    if kind == 0:  # random frames
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 20))]
    if kind == 1:  # truncated header
        return [MAGIC_FRAME, good[: rng.randrange(0, len(good))]]
    if kind == 2:  # huge claimed sizes
        return [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "h", "buffers": [
            {"name": "layer", "width": rng.choice([2**15, 2**20, 2**31]), "height": 2**14,
             "format": "rgba8", "nbytes": 2**40}]}), b"tiny"]
    if kind == 3:  # wrong formats and sizes
        return [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "f", "buffers": [
            {"name": "layer", "width": 2, "height": 2, "format": rng.choice(
                ["rgb8", "RGBA8", "", "rgbaf64", 7]), "nbytes": 16}]}), b"x" * 16]
    if kind == 4:  # deep nesting
        return [MAGIC_FRAME, b"\x91" * rng.randrange(500, 5000) + b"\xc0"]
    if kind == 5:  # an oversized prompt
        return [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "p", "body": {
            "prompt": "a" * rng.randrange(1001, 50000)}})]
    if kind == 6:  # bad magic
        return [rng.randbytes(3), good]
    if kind == 7:  # containers claiming billions of entries
        return [MAGIC_FRAME, rng.choice([b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
                                         b"\xdb\xff\xff\xff\xff"])]
    return [MAGIC_FRAME, msgpack.packb({"type": rng.choice(["frobnicate", 5, None, "submit"]),
                                        "id": rng.choice(["", 3, None, "z" * 5000])})]


def test_ten_thousand_hostile_messages(engine: EngineProcess) -> None:
    rng = random.Random(1234)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(engine.endpoint)
    before = _rss_kb(engine.proc.pid)
    replies = 0
    try:
        for batch in range(100):
            for _ in range(101):
                sock.send_multipart(_hostile(rng))
            while sock.poll(0 if batch < 99 else 2000):
                sock.recv_multipart()
                replies += 1
        sock.send_multipart(encode(Message("ping")))
        deadline = time.monotonic() + 30
        pong = False
        while time.monotonic() < deadline and not pong:
            if sock.poll(1000):
                frames = sock.recv_multipart()
                replies += 1
                pong = b"pong" in frames[1]
        assert pong, "the engine did not answer a ping after the hostile messages"
    finally:
        sock.close()
    assert engine.proc.poll() is None
    assert replies > 5000  # nearly every message gets an error reply
    grown_mb = (_rss_kb(engine.proc.pid) - before) / 1024
    assert grown_mb < 200, f"engine memory grew by {grown_mb:.0f} MB"
    with engine.client() as client:
        assert client.edit(_request()).patches


def test_cancel_storm(engine: EngineProcess) -> None:
    with engine.client() as client:
        jobs = [client.submit(_request(params={"steps": 40, "delay": 0.02}, seed=i))
                for i in range(3)]
        rng = random.Random(5)
        for _ in range(500):
            client.cancel(rng.choice([*jobs, "no-such-job", "x" * 40]))
        client.poll(0.5)
        for _ in range(20):
            client.poll(0.1)
        assert client.edit(_request()).patches


def test_a_client_that_never_reads_does_not_hurt(engine: EngineProcess) -> None:
    before = _rss_kb(engine.proc.pid)
    lazy = zmq.Context.instance().socket(zmq.DEALER)
    lazy.setsockopt(zmq.LINGER, 0)
    lazy.setsockopt(zmq.RCVHWM, 1)
    lazy.connect(engine.endpoint)
    try:
        for i in range(30):
            lazy.send_multipart(encode(_request(600, 400, seed=i).to_message()))
        time.sleep(1.0)
        with engine.client() as client:  # others are still served
            assert client.edit(_request()).patches
        grown_mb = (_rss_kb(engine.proc.pid) - before) / 1024
        assert grown_mb < 300, f"engine memory grew by {grown_mb:.0f} MB"
    finally:
        lazy.close()


def test_a_remote_jobs_timeout_allows_its_pixels_time_on_a_slow_link(monkeypatch) -> None:
    """No progress can arrive while a large layer goes up (or its patches come down): over
    a remote link the job's silence may last that long before it counts as stopped; a
    local engine gets no such allowance."""
    from protocol.client import SLOW_LINK_BYTES_PER_S, EngineClient
    from protocol.errors import Timeout
    from protocol.events import Welcome

    def submitted(endpoint: str, silent_for: float) -> EngineClient:
        client = EngineClient(endpoint, progress_timeout=30.0)
        client.welcome = Welcome.from_message(Message("welcome", {}))
        monkeypatch.setattr(client, "_send", lambda message: None)
        job = client.submit(_request(2000, 1500, variations=2))  # 12 MB up, 24 MB down
        client._jobs[job] -= silent_for  # as if that long had passed in silence
        return client

    needed = 2000 * 1500 * 5 * 3 / SLOW_LINK_BYTES_PER_S  # layer and mask, up once, down twice
    submitted("tcp://gpubox.example:47615", 30.0 + needed - 5).check_timeouts()
    with pytest.raises(Timeout):
        submitted("tcp://gpubox.example:47615", 30.0 + needed + 5).check_timeouts()
    with pytest.raises(Timeout, match="for 30 s"):
        submitted("tcp://127.0.0.1:47615", 35.0).check_timeouts()
