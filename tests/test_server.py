"""A live engine in a subprocess: requests, jobs, faults and hostile input."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from protocol.errors import EngineRejected, ErrorCode, JobCancelled
from protocol.events import Accepted, Cancelled, EngineError, Progress, Result
from protocol.framing import MAGIC_FRAME, Buffer, Message, decode, encode
from protocol.messages import EditRequest
from tests.support.engine import EngineProcess


def _request(w: int = 40, h: int = 30, *, params: dict | None = None, mask: bool = True,
             variations: int = 1, seed: int = 1) -> EditRequest:
    rng = np.random.default_rng(0)
    layer = rng.integers(0, 255, (h, w, 4), dtype=np.uint8)
    layer[..., 3] = 255
    sel = np.zeros((h, w), np.uint8)
    sel[5:20, 8:30] = 255
    sel[5:20, 8] = 128  # a soft edge
    return EditRequest(
        layer=Buffer("layer", w, h, "rgba8", layer.tobytes()),
        mask=Buffer("mask", w, h, "a8", sel.tobytes()) if mask else None,
        prompt="inverted", method="test-invert", params=params or {}, seed=seed,
        variations=variations, offset=(100, 200))


def _raw_socket(engine: EngineProcess) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(engine.endpoint)
    return sock


def _recv(sock: zmq.Socket, timeout_ms: int = 5000) -> Message:
    assert sock.poll(timeout_ms), "the engine did not answer"
    return decode(sock.recv_multipart())


def test_welcome_advertises_methods_packs_limits(engine: EngineProcess) -> None:
    with engine.client() as client:
        welcome = client.welcome
        assert welcome.protocol == 1
        method = welcome.method("test-invert")
        assert method is not None and method.param("steps").maximum == 1000
        assert welcome.pack("test-pack").resolution == 32
        assert "test-invert" in welcome.pack("test-pack").methods
        assert welcome.limits.max_prompt_chars == 1000
        # each pack says what a request naming no method runs on it
        assert welcome.pack("test-pack").default_method == welcome.default_method
        assert welcome.method_for("test-pack") == welcome.method_for(None) is not None
        assert client.ping() < 1.0
        assert client.status()["jobs"]["max_queue"] == 3


def test_edit_round_trip_keeps_unselected_pixels(engine: EngineProcess) -> None:
    request = _request()
    with engine.client() as client:
        steps: list[Progress] = []
        result = client.edit(request, on_progress=steps.append)
    assert [p.step for p in steps if not p.heartbeat][-1] == 4
    assert any(p.preview is not None for p in steps)
    patch = result.patches[0]
    assert patch.format == "rgba8"
    # the patch covers the selection's box, placed in document coordinates
    assert result.offset == (100 + 8, 200 + 5)
    assert (patch.width, patch.height) == (22, 15)
    pixels = np.frombuffer(patch.data, np.uint8).reshape(15, 22, 4)
    assert (pixels[:, 0, 3] == 128).all() and (pixels[:, 1:, 3] == 255).all()
    assert result.info["seeds"] == [1]


def test_no_mask_means_whole_layer(engine: EngineProcess) -> None:
    with engine.client() as client:
        result = client.edit(_request(mask=False))
    assert result.offset == (100, 200)
    assert (result.patches[0].width, result.patches[0].height) == (40, 30)


def test_variations_and_determinism(engine: EngineProcess) -> None:
    with engine.client() as client:
        a = client.edit(_request(variations=2, params={"jitter": 0.5}, seed=7))
        b = client.edit(_request(variations=2, params={"jitter": 0.5}, seed=7))
    assert len(a.patches) == 2 and a.info["seeds"] == [7, 8]
    assert bytes(a.patches[0].data) != bytes(a.patches[1].data)
    assert bytes(a.patches[0].data) == bytes(b.patches[0].data)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"method": "nope"}, ErrorCode.UNKNOWN_METHOD),
        ({"pack": "nope"}, ErrorCode.UNKNOWN_PACK),
        ({"params": {"steps": 0}}, ErrorCode.INVALID_PARAMS),
        ({"params": {"bogus": 1}}, ErrorCode.INVALID_PARAMS),
        ({"params": {"paste": "sideways"}}, ErrorCode.INVALID_PARAMS),
        ({"mask": Buffer("mask", 40, 30, "a8", bytes(40 * 30))}, ErrorCode.INVALID_REQUEST),
    ],
)
def test_bad_requests_get_clear_errors(engine: EngineProcess, change: dict,
                                       code: ErrorCode) -> None:
    request = _request()
    for key, value in change.items():
        setattr(request, key, value)
    with engine.client() as client, pytest.raises(EngineRejected) as info:
        client.edit(request)
    assert info.value.code is code
    assert info.value.message


def test_method_failure_is_reported_and_engine_keeps_serving(engine: EngineProcess) -> None:
    with engine.client() as client:
        with pytest.raises(EngineRejected, match="asked to fail") as info:
            client.edit(_request(params={"fail": True}))
        assert info.value.code is ErrorCode.METHOD_FAILED
        assert client.edit(_request()).patches
        # a result the wire cannot carry is that job's failure; the worker keeps running
        with pytest.raises(EngineRejected, match="the edit failed") as info:
            client.edit(_request(params={"unsendable_info": True}))
        assert info.value.code is ErrorCode.METHOD_FAILED
        assert client.edit(_request()).patches


def test_cancel_mid_job(engine: EngineProcess) -> None:
    with engine.client() as client:
        job = client.submit(_request(params={"steps": 200, "delay": 0.02}))
        cancel = threading.Event()
        seen: list[Progress] = []

        def on_progress(p: Progress) -> None:
            seen.append(p)
            if p.step >= 3:
                cancel.set()

        start = time.monotonic()
        with pytest.raises(JobCancelled):
            client.wait(job, on_progress=on_progress, cancel=cancel)
        assert time.monotonic() - start < 3.0
        assert max(p.step for p in seen) < 200
        assert client.edit(_request()).patches  # serving the next job


def test_cancel_queued_job_and_unknown_job(engine: EngineProcess) -> None:
    with engine.client() as client:
        first = client.submit(_request(params={"steps": 50, "delay": 0.02}))
        second = client.submit(_request())
        client.cancel(second)
        events: list = []
        deadline = time.monotonic() + 10
        while not any(isinstance(e, Cancelled) and e.job == second for e in events):
            assert time.monotonic() < deadline
            events += client.poll(0.1)
        client.cancel(first)
        with pytest.raises(EngineRejected) as info:
            client._request(Message("cancel", {"job": "f" * 32}), 3.0)
        assert info.value.code is ErrorCode.UNKNOWN_JOB


def test_a_waiting_job_hears_a_heartbeat_with_its_place(engine: EngineProcess) -> None:
    """A client behind another's long job must not take the engine for dead: its job gets
    a heartbeat a second, saying how many are ahead."""
    with engine.client() as busy, engine.client(progress_timeout=2.5) as waiting:
        first = busy.submit(_request(params={"steps": 100, "delay": 0.04}))
        second = waiting.submit(_request())
        seen: list[Progress] = []
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            seen += [e for e in waiting.poll(0.1) if isinstance(e, Progress)]
            waiting.check_timeouts()  # 2.5 s of silence would raise
        busy.cancel(first)
        assert [e.message for e in seen if e.heartbeat][:2] == ["queued, 1 ahead"] * 2
        assert all(e.worth_showing for e in seen)  # editors show where the job waits
        assert waiting.wait(second).patches  # then it runs


def test_queue_full(engine: EngineProcess) -> None:
    with engine.client() as client:
        jobs = [client.submit(_request(params={"steps": 100, "delay": 0.01})) for _ in range(6)]
        errors: list[EngineError] = []
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            errors += [e for e in client.poll(0.1) if isinstance(e, EngineError)]
        assert errors and errors[0].code is ErrorCode.QUEUE_FULL
        assert "queue is full" in errors[0].message
        for job in jobs:
            client.cancel(job)
        time.sleep(0.5)


def test_idempotent_resubmit_and_fetch_after_reconnect(engine: EngineProcess) -> None:
    request = _request(params={"steps": 10, "delay": 0.02})
    with engine.client() as client:
        job = client.submit(request)
        client.close()  # the client goes away mid-job
    with engine.client() as again:
        again.submit(request, job_id=job)  # same id: attaches, does not run twice
        result = again.wait(job)
        assert result.job == job
        again.fetch(job)  # kept for re-fetch
        events: list = []
        deadline = time.monotonic() + 5
        while not any(isinstance(e, Result) for e in events):
            assert time.monotonic() < deadline
            events += again.poll(0.1)


def test_client_disconnect_mid_job_does_not_hurt_engine(engine: EngineProcess) -> None:
    client = engine.client()
    client.submit(_request(params={"steps": 30, "delay": 0.01}))
    client.close()
    with engine.client() as other:
        assert other.edit(_request()).patches


def test_two_clients_at_once(engine: EngineProcess) -> None:
    results: dict[int, Result] = {}

    def run(i: int) -> None:
        with engine.client() as client:
            results[i] = client.edit(_request(seed=i, params={"steps": 5, "delay": 0.01}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 1]
    assert results[0].info["seeds"] == [0] and results[1].info["seeds"] == [1]


def test_heartbeats_while_a_step_is_slow(engine: EngineProcess) -> None:
    with engine.client(progress_timeout=2.5) as client:
        seen: list[Progress] = []
        client.edit(_request(params={"steps": 1, "delay": 3.5}), on_progress=seen.append)
    assert any(p.heartbeat for p in seen)


MALFORMED: list[list[bytes]] = [
    [b"x"],
    [b""] * 50,
    [MAGIC_FRAME, msgpack.packb([1, 2, 3])],
    [MAGIC_FRAME, b"\xc1\xc1"],
    [b"BAD", msgpack.packb({"type": "ping", "id": "a"})],
    [b"WB\x07", msgpack.packb({"type": "ping", "id": "a"})],
    [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "a", "buffers": [
        {"name": "layer", "width": 8000, "height": 8000, "format": "rgba8",
         "nbytes": 256000000}]}), b"tiny"],
    [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "a", "buffers": [
        {"name": "layer", "width": 2, "height": 2, "format": "rgba8", "nbytes": 16}]}),
     b"x" * 15],
    [MAGIC_FRAME, msgpack.packb({"type": "frobnicate", "id": "a"})],
    [MAGIC_FRAME, msgpack.packb({"type": "submit", "id": "b", "body": {"prompt": "p"}})],
    [MAGIC_FRAME, msgpack.packb({"type": "cancel", "id": "c", "body": {}})],
    [MAGIC_FRAME, b"\xdd\xff\xff\xff\xff"],  # array claiming 4 billion entries
]


def test_malformed_corpus_then_good_request(engine: EngineProcess) -> None:
    sock = _raw_socket(engine)
    try:
        for frames in MALFORMED:
            sock.send_multipart(frames)
            reply = _recv(sock)
            assert reply.type == "error", frames
            assert ErrorCode.parse(reply.body["code"]) is not ErrorCode.INTERNAL
            assert reply.body["message"]
        sock.send_multipart(encode(Message("ping")))
        assert _recv(sock).type == "pong"
    finally:
        sock.close()
    with engine.client() as client:
        assert client.edit(_request()).patches


def test_oversized_frame_is_dropped_by_the_socket(engine: EngineProcess, tmp_path: Path) -> None:
    sock = _raw_socket(engine)
    try:
        big = bytes(engine_limits(engine).max_frame_bytes + 128 * 1024)
        sock.send_multipart([MAGIC_FRAME, msgpack.packb({"type": "ping", "id": "a"}), big])
        time.sleep(0.5)
    finally:
        sock.close()
    with engine.client() as client:  # the engine shrugged it off
        assert client.ping() < 1.0


def engine_limits(engine: EngineProcess):
    with engine.client() as client:
        return client.limits


def test_accepted_event_reports_position(engine: EngineProcess) -> None:
    with engine.client() as client:
        job = client.submit(_request())
        accepted: list[Accepted] = []
        client.wait(job, on_accepted=accepted.append)
        assert accepted and accepted[0].position >= 0


def test_a_job_whose_client_is_gone_is_cancelled_after_the_grace(tmp_path: Path) -> None:
    """An editor killed mid-edit (GIMP's cancel kills the plug-in) does not hold the worker
    for the rest of its job: after ``--orphan-seconds`` unreachable, the job is cancelled."""
    eng = EngineProcess(tmp_path, "--orphan-seconds", "1")
    try:
        client = eng.client()
        orphan = client.submit(_request(params={"steps": 400, "delay": 0.05}))  # 20 s
        deadline = time.monotonic() + 30
        while not any(isinstance(e, Progress) for e in client.poll(0.1)):
            assert time.monotonic() < deadline, "the job never started"
        client.close()  # gone without a cancel, as a killed plug-in is
        with eng.client() as other:
            # queued behind the orphan; it runs once the orphan has been stopped
            assert other.edit(_request(params={"steps": 1})).patches
            other.fetch(orphan)
            events: list = []
            deadline = time.monotonic() + 5
            while not any(isinstance(e, Cancelled | Result) for e in events):
                assert time.monotonic() < deadline
                events += other.poll(0.1)
            assert any(isinstance(e, Cancelled) for e in events)
        assert "job.orphaned" in eng.log.read_text()
    finally:
        eng.stop()


def test_a_packs_own_default_method_decides_which_parameters_a_request_takes() -> None:
    """`wordbrush edit --pack ffhq --param steps=80` is read against what the engine will
    run on that pack (its manifest's preference), not against the default pack's method."""
    from protocol.events import Welcome
    from protocol.framing import Message

    welcome = Welcome.from_message(Message("welcome", {
        "protocol": 1, "default_method": "clipinverter", "default_pack": "demo",
        "methods": [], "packs": [
            {"name": "demo", "resolution": 64, "methods": [], "default_method": "clipinverter"},
            {"name": "ffhq", "resolution": 1024, "methods": [],
             "default_method": "paint-by-word"},
            {"name": "old-engine", "resolution": 64, "methods": []}]}))
    assert welcome.method_for("ffhq") == "paint-by-word"
    assert welcome.method_for(None) == welcome.method_for("demo") == "clipinverter"
    assert welcome.method_for("old-engine") == "clipinverter"  # an engine that does not say
    assert welcome.method_for("nope") == "clipinverter"


def test_the_orphan_grace_follows_the_endpoint() -> None:
    """A local client does not drop out and come back: its gone job is stopped sooner."""
    from engine.server import ServerConfig

    assert ServerConfig(endpoint="ipc:///tmp/x.sock").orphan_grace() == 10.0
    assert ServerConfig(endpoint="tcp://0.0.0.0:47615").orphan_grace() == 60.0
    assert ServerConfig(endpoint="tcp://0.0.0.0:47615", orphan_seconds=0).orphan_grace() == 0
