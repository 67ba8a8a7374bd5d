"""Shared-memory rings between a client and a local engine (protocol.shm)."""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import shm
from protocol.errors import ErrorCode, ProtocolError, SharedMemoryUnknown
from protocol.framing import MAGIC_FRAME, Buffer, Message, decode, encode
from protocol.messages import EditRequest
from tests.support.engine import EngineProcess

if not shm.supported():
    pytest.skip("shared memory is only used on Linux with a writable /dev/shm; this machine "
                "has none", allow_module_level=True)

CAP = 4 * 1024 * 1024


@pytest.fixture
def link_pair() -> tuple[shm.SharedLink, shm.SharedLink]:
    client, offer = shm.SharedLink.offer(CAP)
    try:
        engine = shm.SharedLink.accept(offer)
    finally:
        client.unlink()
    yield client, engine
    client.close()
    engine.close()


def _pixels(nbytes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, nbytes, dtype=np.uint8)


def test_a_buffer_crosses_the_ring_and_its_space_comes_back(link_pair) -> None:
    client, engine = link_pair
    data = _pixels(1024 * 1024)
    pos = client.writer.place(data)
    assert pos is not None
    view = engine.reader.view(pos, data.nbytes, "layer")
    assert view.readonly and bytes(view) == data.tobytes()
    # held: what would overwrite it does not fit, so that buffer would travel as a frame
    rest = _pixels(3 * 1024 * 1024 + 64, 1)
    assert client.writer.place(rest) is None
    as_array = np.frombuffer(view, np.uint8)[10:20]  # views of views keep the space held
    del view
    gc.collect()
    assert client.writer.arena.tail == 0
    del as_array
    gc.collect()
    assert client.writer.arena.tail == pos + data.nbytes
    assert client.writer.place(rest) is not None


def test_the_ring_wraps_without_splitting_a_buffer(link_pair) -> None:
    client, engine = link_pair
    for i in range(12):  # 12 x 1.5 MiB through a 4 MiB ring: several laps
        data = _pixels(1536 * 1024, i)
        pos = client.writer.place(data)
        assert pos is not None, f"buffer {i} did not fit although every earlier one was freed"
        assert pos % CAP + data.nbytes <= CAP
        assert bytes(engine.reader.view(pos, data.nbytes, "layer")) == data.tobytes()
        gc.collect()


def test_a_release_inside_the_readers_own_bookkeeping_never_blocks(link_pair) -> None:
    """The collector may free a view (and run its finalizer) while the reader holds its
    lock, in the same thread; that must queue the release, not deadlock."""
    import threading

    client, engine = link_pair
    data = _pixels(1024 * 1024)
    pos = client.writer.place(data)
    tails: list[int] = []

    def nested_release() -> None:
        view = engine.reader.view(pos, data.nbytes, "layer")
        with engine.reader._lock:
            del view  # the finalizer runs here, with the lock held by this thread
            tails.append(client.writer.arena.tail)
        engine.reader._fold()
        tails.append(client.writer.arena.tail)

    worker = threading.Thread(target=nested_release, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "releasing a view inside the reader's bookkeeping deadlocked"
    assert tails == [0, pos + data.nbytes]


def test_two_views_of_one_position_hold_it_until_both_die(link_pair) -> None:
    client, engine = link_pair
    data = _pixels(1024 * 1024)
    pos = client.writer.place(data)
    first = engine.reader.view(pos, data.nbytes, "a")
    second = engine.reader.view(pos, data.nbytes, "b")
    del first
    gc.collect()
    assert client.writer.arena.tail == 0
    del second
    gc.collect()
    assert client.writer.arena.tail == pos + data.nbytes


def test_an_unsent_placement_is_taken_back(link_pair) -> None:
    client, _ = link_pair
    message = Message("result", {}, [Buffer("patch0", 512, 512, "rgba8", _pixels(512 * 512 * 4))])
    frames = client.writer.place_frames(encode(message))
    assert len(frames) == 2
    head = client.writer._head
    client.writer.unplace_last()
    assert client.writer._head < head and not client.writer._placed
    again = client.writer.place_frames(encode(message))
    assert msgpack.unpackb(again[1])["buffers"][0]["shm"] == \
        msgpack.unpackb(frames[1])["buffers"][0]["shm"]


def test_ring_sizes_must_keep_positions_aligned() -> None:
    with pytest.raises(shm.SharedMemoryUnavailable):
        shm.SharedLink.offer(1_000_003)


def test_files_left_by_a_dead_client_are_removed() -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = shm.SHM_DIR / f"wordbrush-{os.getuid()}-{pid}-{'ef' * 16}-up"
    stale.write_bytes(b"x")
    ours = shm.SHM_DIR / f"wordbrush-{os.getuid()}-{os.getpid()}-{'ab' * 16}-up"
    ours.write_bytes(b"x")
    try:
        shm.remove_stale_arenas()
        assert not stale.exists()
        assert ours.exists()  # its creator (this process) is alive
    finally:
        stale.unlink(missing_ok=True)
        ours.unlink(missing_ok=True)


def test_small_and_oversized_buffers_travel_as_frames(link_pair) -> None:
    client, _ = link_pair
    assert client.writer.place(_pixels(1000)) is None
    assert client.writer.place(_pixels(CAP + 64)) is None


def test_frames_and_ring_mix_in_one_message(link_pair) -> None:
    client, engine = link_pair
    big = _pixels(512 * 512 * 4)
    small = _pixels(16 * 16)
    message = Message("submit", {"prompt": "x"}, [Buffer("layer", 512, 512, "rgba8", big),
                                                  Buffer("mask", 16, 16, "a8", small)])
    frames = client.writer.place_frames(encode(message))
    assert len(frames) == 3  # magic, header, the small mask; the layer went through the ring
    got = decode(frames, shared=engine.reader)
    assert bytes(got.buffer("layer").data) == big.tobytes()
    assert bytes(got.buffer("mask").data) == small.tobytes()
    with pytest.raises(SharedMemoryUnknown) as err:
        decode(frames)
    assert err.value.code is ErrorCode.SHARED_MEMORY_UNKNOWN
    assert err.value.ref == message.id and err.value.message_type == "submit"


@pytest.mark.parametrize("pos", [-64, 3, 2**80, True, "0", CAP - 64])
def test_the_reader_checks_every_position(link_pair, pos) -> None:
    _, engine = link_pair
    with pytest.raises(ProtocolError):
        engine.reader.view(pos, 1024, "layer")


def _offer_file(*, mode: int = 0o600, size: int = CAP,
                magic: bytes = shm.MAGIC) -> str:
    import secrets

    path = shm.SHM_DIR / f"wordbrush-{os.getuid()}-{os.getpid()}-{secrets.token_hex(16)}-up"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)
    os.ftruncate(fd, shm.HEADER_BYTES + size)
    os.pwrite(fd, magic, 0)
    os.close(fd)
    return str(path)


@pytest.mark.parametrize("problem", ["mode", "size", "magic", "name", "link", "elsewhere"])
def test_the_engine_refuses_unsafe_offers(problem: str, tmp_path: Path) -> None:
    made = []
    if problem == "mode":
        path = _offer_file(mode=0o644)
    elif problem == "size":
        path = _offer_file(size=CAP // 2)
    elif problem == "magic":
        path = _offer_file(magic=b"NOTOURS!")
    elif problem == "name":
        path = _offer_file()
        renamed = str(shm.SHM_DIR / f"other-{os.getpid()}")
        os.rename(path, renamed)
        path = renamed
    elif problem == "link":
        target = _offer_file()
        made.append(target)
        path = str(shm.SHM_DIR / f"wordbrush-{os.getuid()}-{os.getpid()}-{'ab' * 16}-up")
        os.symlink(target, path)
    else:
        path = str(tmp_path / f"wordbrush-{os.getuid()}-{os.getpid()}-{'cd' * 16}-up")
        Path(path).write_bytes(shm.MAGIC + bytes(shm.HEADER_BYTES + CAP - len(shm.MAGIC)))
    made.append(path)
    try:
        with pytest.raises(shm.SharedMemoryUnavailable):
            shm.Arena.open_offered(path, CAP)
    finally:
        for item in made:
            Path(item).unlink(missing_ok=True)


def _arena_files() -> set[str]:
    return {p.name for p in shm.SHM_DIR.glob(f"wordbrush-{os.getuid()}-*")}


def _big_request(side: int = 384) -> EditRequest:
    """A layer large enough for the ring: a smooth gradient, so the edit's output varies."""
    ramp = np.linspace(0, 255, side).astype(np.uint8)
    layer = np.empty((side, side, 4), np.uint8)
    layer[..., 0], layer[..., 1] = ramp[None, :], ramp[:, None]
    layer[..., 2], layer[..., 3] = 90, 255
    mask = np.zeros((side, side), np.uint8)
    mask[16:-16, 16:-16] = 255
    return EditRequest(layer=Buffer("layer", side, side, "rgba8", layer),
                       mask=Buffer("mask", side, side, "a8", mask), prompt="inverted",
                       method="test-invert", params={"steps": 1})


def _patch(result) -> np.ndarray:
    patch = result.patches[0]
    return np.frombuffer(patch.data, np.uint8).reshape(patch.height, patch.width, 4).copy()


def test_a_local_engine_edits_through_shared_memory(engine: EngineProcess) -> None:
    request = _big_request()
    with engine.client(shared_memory=False) as client:
        assert not client.uses_shared_memory
        by_frames = client.edit(request)
    expected = _patch(by_frames)
    assert expected.nbytes >= shm.MIN_SHARED_BYTES and (expected[..., 2] > 150).any()
    before = _arena_files()
    with engine.client() as client:
        assert client.uses_shared_memory
        assert _arena_files() == before, "the arena names must be gone once the engine answered"
        result = client.edit(request)
        assert result.patches[0].data.readonly  # a view of the ring, not a copy
        assert result.offset == by_frames.offset
        assert np.array_equal(_patch(result), expected)
        del result
        for _ in range(4):  # the ring's space is reused edit after edit
            assert np.array_equal(_patch(client.edit(request)), expected)


def test_a_second_hello_without_an_offer_gets_frames(engine: EngineProcess) -> None:
    """The engine lets go of a client's rings on every hello, so a client that stops
    offering never gets buffers in rings it has dropped."""
    request = _big_request()
    with engine.client() as client:
        assert client.uses_shared_memory
        expected = _patch(client.edit(request))
        client.shared_memory = False
        client.connect()
        assert not client.uses_shared_memory
        assert np.array_equal(_patch(client.edit(request)), expected)
        client.shared_memory = True
        client.connect()
        assert client.uses_shared_memory
        assert np.array_equal(_patch(client.edit(request)), expected)


def test_the_engine_lets_go_of_a_closed_clients_rings(engine: EngineProcess) -> None:
    import time

    released = engine.log.read_text().count("shm.released")
    with engine.client() as client:
        assert client.uses_shared_memory and client.welcome.shared_memory
        assert client.status()["shared_memory_clients"] >= 1
    deadline = time.monotonic() + 5
    while engine.log.read_text().count("shm.released") == released:
        assert time.monotonic() < deadline, "the engine kept the rings of a closed client"
        time.sleep(0.05)


def test_a_restarted_engine_gets_the_buffers_as_frames(tmp_path: Path) -> None:
    first = EngineProcess(tmp_path)
    client = first.client(progress_timeout=20.0)
    try:
        assert client.uses_shared_memory
        first.stop()
        second = EngineProcess(tmp_path)
        try:
            # as if the submit left before the client noticed the reconnect
            client._send_shared = True
            result = client.edit(_big_request())
            assert (_patch(result)[..., 3] == 255).any()
            assert not client.uses_shared_memory
        finally:
            second.stop()
    finally:
        client.close()


_positions = st.one_of(st.integers(-2**70, 2**70), st.booleans(), st.none(), st.text(max_size=3),
                       st.floats(allow_nan=True), st.integers(0, 64).map(lambda n: n * 4096))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_positions, st.integers(1, 2048), st.integers(1, 2048),
                          st.sampled_from(["rgba8", "a8", "rgbaf32", "bogus"])), max_size=4),
       st.integers(0, 3))
def test_fuzz_ring_positions_only_raise_protocol_errors(link_pair, entries, frames) -> None:
    """Whatever positions and sizes a peer claims, decoding reads only inside the ring."""
    _, engine = link_pair
    specs = [{"name": f"b{i}", "width": w, "height": h, "format": fmt,
              "nbytes": w * h * 4 if fmt == "rgba8" else w * h, "shm": pos}
             for i, (pos, w, h, fmt) in enumerate(entries)]
    header = {"v": 1, "type": "submit", "id": "x" * 32, "body": {}, "buffers": specs}
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    with contextlib.suppress(ProtocolError):
        message = decode([MAGIC_FRAME, packed, *([b"\0" * 64] * frames)], shared=engine.reader)
        for buf in message.buffers:
            assert buf.data.nbytes == buf.expected_nbytes
