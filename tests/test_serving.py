"""Serving many artists: a fair queue, sick packs, poisoned pixels, and a quiet log."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.jobs import Job, JobBook, QueueFull
from engine.packs import PackRegistry
from engine.runner import EditRunner
from protocol.errors import EngineRejected, ErrorCode, InvalidRequest
from protocol.events import Progress
from protocol.framing import Buffer
from protocol.messages import EditRequest, check_finite
from protocol.pixels import non_finite_pixels
from tests.support import fake_methods  # noqa: F401 - registers test-invert
from tests.support.engine import EngineProcess, write_test_pack


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PackRegistry:
    return PackRegistry([write_test_pack(tmp_path_factory.mktemp("packs"))])


def _job(i: int, client: str) -> Job:
    return Job(id=f"{client}{i}", peer=client.encode(), request=None, method="m", pack=None,
               params={}, seed=0, client=client)


# ------------------------------------------------------------------------- fair queue


def test_clients_are_served_in_turn() -> None:
    """A sends eight, B one while A's first runs: B's starts next; then A's, B's, in turn;
    what one client may hold is capped."""
    book = JobBook(max_queue=32, max_per_client=8)
    for i in range(8):
        book.add(_job(i, "A"))
    with pytest.raises(QueueFull, match="as many as one client may"):
        book.add(_job(8, "A"))
    assert book.take(0).id == "A0"  # running
    assert book.add(_job(0, "B")) == 1  # next, not ninth
    book.add(_job(1, "B"))
    assert [j.id for j in book.queued()][:4] == ["B0", "A1", "B1", "A2"]
    order = [book.take(0).id for _ in range(4)]
    assert order == ["B0", "A1", "B1", "A2"]
    assert book.position(book.queued()[0]) == 1
    book.add(_job(8, "A"))  # A has room again
    with pytest.raises(QueueFull, match="queue is full"):
        small = JobBook(max_queue=2, max_per_client=8)
        for i in range(3):
            small.add(_job(i, f"C{i}"))


def test_a_second_artist_waits_for_one_job_of_the_first(tmp_path: Path) -> None:
    """Two clients on a real engine: one sends twenty edits (those past its share are
    refused with queue_full), the other one; the second's starts right after the edit
    that was running, and each client gets only its own results."""
    eng = EngineProcess(tmp_path, max_queue=32)
    try:
        first, second = eng.client(), eng.client()
        sent = [first.submit(_request(seed=i, params={"steps": 5, "delay": 0.05}))
                for i in range(20)]
        deadline = time.monotonic() + 10
        while second.status()["jobs"]["running"] is None:  # the first's first edit runs
            assert time.monotonic() < deadline
            time.sleep(0.02)
        other = second.submit(_request(seed=99, params={"steps": 1}))
        done_first: list[tuple[float, str]] = []
        refused: list[ErrorCode] = []

        def wait_first() -> None:
            for job in sent:
                try:
                    result = first.wait(job)
                except EngineRejected as exc:
                    refused.append(exc.code)
                else:
                    done_first.append((time.monotonic(), result.job))

        thread = threading.Thread(target=wait_first)
        thread.start()
        result = second.wait(other)
        second_done = time.monotonic()
        thread.join(120)
        assert result.job == other
        before = [job for at, job in done_first if at < second_done]
        assert len(before) <= 1, f"the second artist waited for {len(before)} edits"
        # the first's share: eight waiting (and one running, if the worker took it before
        # the ninth arrived); the rest refused
        assert len(done_first) in (8, 9)
        assert refused == [ErrorCode.QUEUE_FULL] * (20 - len(done_first))
        assert {job for _, job in done_first} <= set(sent)
        first.close()
        second.close()
    finally:
        eng.stop()


def _request(w: int = 40, h: int = 30, *, params: dict | None = None, seed: int = 1,
             fmt: str = "rgba8", data: bytes | None = None,
             mask: bytes | None = None) -> EditRequest:
    rng = np.random.default_rng(0)
    if data is None:
        layer = rng.integers(0, 255, (h, w, 4), dtype=np.uint8)
        layer[..., 3] = 255
        data = layer.tobytes()
    if mask is None:
        sel = np.zeros((h, w), np.uint8)
        sel[5:20, 8:30] = 255
        mask = sel.tobytes()
    return EditRequest(layer=Buffer("layer", w, h, fmt, data), mask=Buffer("mask", w, h, "a8",
                                                                          mask),
                       prompt="inverted", method="test-invert", params=params or {}, seed=seed,
                       offset=(100, 200))


def test_max_queue_zero_is_refused_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--max-queue", "0"])
    assert "--max-queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--max-per-client", "0"])


def test_a_dead_client_leaves_one_log_line(tmp_path: Path) -> None:
    """Messages to a client that is gone are dropped: the first is logged, the rest
    counted, instead of a line a heartbeat."""
    eng = EngineProcess(tmp_path, "--orphan-seconds", "4")
    try:
        client = eng.client()
        client.submit(_request(params={"steps": 100, "delay": 0.05}))
        deadline = time.monotonic() + 30
        while not any(isinstance(e, Progress) for e in client.poll(0.1)):
            assert time.monotonic() < deadline, "the job never started"
        client.close()
        time.sleep(4)  # steps and heartbeats go nowhere
        with eng.client() as other:
            assert other.edit(_request(params={"steps": 1}))  # the orphan was stopped
        log = eng.log.read_text()
    finally:
        eng.stop()
    [orphaned] = [line for line in log.splitlines() if "job.orphaned" in line]
    peer = orphaned.split("peer=")[1].split()[0]
    dropped = [line for line in log.splitlines() if "send.dropped" in line and peer in line]
    assert len(dropped) == 1 and "more are counted" in dropped[0], dropped


# ------------------------------------------------------------------------- pixels


def _float_layer(fmt: str, w: int, h: int, bad: dict[tuple[int, int, int], float]) -> bytes:
    pixels = np.full((h, w, 4), 0.5, np.float32)
    pixels[..., 3] = 1.0
    for (y, x, c), value in bad.items():
        pixels[y, x, c] = value
    return pixels.astype("<f2" if fmt == "rgbaf16" else "<f4").tobytes()


@pytest.mark.parametrize("fmt", ["rgbaf16", "rgbaf32"])
def test_non_finite_pixels_are_found_without_numpy(fmt: str) -> None:
    """The editors' pure-Python scan counts what numpy counts: NaN, +inf and -inf in any
    channel, alpha included, inside the mask only."""
    rng = np.random.default_rng(3)
    w, h = 37, 23
    bad = {(int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(4))):
           float(rng.choice([np.nan, np.inf, -np.inf])) for _ in range(40)}
    data = _float_layer(fmt, w, h, bad)
    values = np.frombuffer(data, "<f2" if fmt == "rgbaf16" else "<f4").reshape(h, w, 4)
    mask = np.zeros((h, w), np.uint8)
    mask[5:15, 3:30] = 200
    expected = ~np.isfinite(values).all(axis=-1)
    count, first = non_finite_pixels(data, fmt, w, h)
    assert count == int(expected.sum())
    y, x = np.argwhere(expected)[0]
    assert first == (x, y)
    count, _ = non_finite_pixels(data, fmt, w, h, mask.tobytes())
    assert count == int((expected & (mask > 0)).sum())
    # large finite values (1e38, 65504 in half) are not flagged
    big = struct.pack("<4f", 1e38, -3e38, 0.0, 1.0) if fmt == "rgbaf32" else \
        struct.pack("<4e", 65504.0, -65504.0, 0.0, 1.0)
    assert non_finite_pixels(big, fmt, 1, 1) == (0, None)
    assert non_finite_pixels(b"\xff" * 16, "rgba8", 2, 2) == (0, None)


@pytest.mark.parametrize("fmt", ["rgbaf16", "rgbaf32"])
@pytest.mark.parametrize("where", ["rgb", "alpha"])
def test_non_finite_inside_the_selection_is_refused_by_client_and_engine(
        registry: PackRegistry, fmt: str, where: str) -> None:
    """Inside the selection: refused before sending (every client's pre-flight) and by
    the engine, with how many and where; the request never reaches the model."""
    w, h = 40, 30
    channel = 0 if where == "rgb" else 3
    data = _float_layer(fmt, w, h, {(10, 12, channel): np.nan, (11, 12, channel): np.inf})
    request = _request(w, h, fmt=fmt, data=data)
    with pytest.raises(InvalidRequest, match=r"2 pixels inside the selection .* at 112,210"):
        check_finite(request)
    runner = EditRunner(registry, "cpu")
    with pytest.raises(InvalidRequest, match=r"2 pixels inside the selection"):
        runner.run_local(request)


@pytest.mark.parametrize("fmt", ["rgbaf16", "rgbaf32"])
def test_non_finite_outside_the_selection_is_ignored(registry: PackRegistry, fmt: str) -> None:
    """Outside the selection they are left alone: the result has none, and the pixels
    there keep their bits."""
    from engine.imaging import Patch, composite_over, decode_pixels

    w, h = 40, 30
    data = _float_layer(fmt, w, h, {(2, 2, 0): np.nan, (25, 35, 3): -np.inf,
                                    (6, 6, 1): np.inf})  # (6, 6) is next to the selection
    request = _request(w, h, fmt=fmt, data=data, params={"steps": 1})
    check_finite(request)
    outcome = EditRunner(registry, "cpu").run_local(request)
    patch = outcome.patches[0]
    pixels = decode_pixels(patch.data, patch.width, patch.height, patch.format)
    assert np.isfinite(pixels).all()
    original = np.frombuffer(data, "<f2" if fmt == "rgbaf16" else "<f4").reshape(h, w, 4)
    out = composite_over(original.astype(np.float32), Patch(pixels, (outcome.offset[0] - 100,
                                                                     outcome.offset[1] - 200),
                                                            patch.format))
    sel = np.frombuffer(request.mask.data, np.uint8).reshape(h, w)
    assert np.array_equal(out[sel == 0], original.astype(np.float32)[sel == 0],
                          equal_nan=True)


# ------------------------------------------------------------------------- sick packs


def _copy_demo(folder: Path) -> Path:
    import shutil

    from engine.packs import REPO_PACKS

    target = folder / "demo"
    shutil.copytree(REPO_PACKS / "demo", target)
    return target


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_a_broken_copy_never_hides_the_healthy_pack(tmp_path: Path, damage: str) -> None:
    """A corrupt copy named demo in --pack-dir (found first) does not take over from the
    intact built-in demo: it is passed over, with why, and the default stays healthy."""
    from engine.packs import REPO_PACKS

    broken = _copy_demo(tmp_path)
    generator = broken / "generator.pt"
    data = generator.read_bytes()
    if damage == "truncated":
        generator.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        generator.write_bytes(b"\x00" * 64 + data[64:])
    elif damage == "empty":
        generator.write_bytes(b"")
    else:
        generator.unlink()
    registry = PackRegistry([tmp_path, REPO_PACKS])
    assert registry.default == "demo"
    pack = registry.get("demo")
    assert pack.manifest.root == REPO_PACKS / "demo"
    pack.get("generator")  # the healthy one loads
    [info] = [i for i in registry.describe({}) if i["name"] == "demo"]
    assert "error" not in info
    [passed] = info["passed_over"]
    assert passed["path"] == str(broken) and "generator" in passed["why"]


def test_a_broken_pack_is_never_the_default(tmp_path: Path) -> None:
    """Renamed, a corrupt pack found first is listed broken (with its reason) and is not
    the default; a pack that fails to load later is reported broken too."""
    broken = _copy_demo(tmp_path / "a")
    data = json.loads((broken / "pack.json").read_text())
    data["name"] = "aaa"
    (broken / "pack.json").write_text(json.dumps(data))
    (broken / "encoder.pt").write_bytes(b"PK\x03\x04 cut short")
    registry = PackRegistry([tmp_path / "a", write_test_pack(tmp_path / "b")])
    assert registry.default == "test-pack"
    infos = {i["name"]: i for i in registry.describe({})}
    assert "damaged" in infos["aaa"]["error"] and "encoder" in infos["aaa"]["error"]
    assert registry.broken() == {"aaa": infos["aaa"]["error"]}


def test_a_pack_that_fails_to_load_falls_back_to_its_healthy_twin(tmp_path: Path) -> None:
    """A copy that looks whole but does not load (weights of another shape) is in use
    first; once it fails, the request says why, info lists it broken, and the next
    request gets the healthy copy of that name."""
    from engine.packs import REPO_PACKS, PackError
    from tests.support.packs import make_pack

    twin = _copy_demo(tmp_path)
    other = make_pack(tmp_path / "other", name="other")
    (twin / "generator.pt").write_bytes((other / "generator.pt").read_bytes())
    registry = PackRegistry([tmp_path, REPO_PACKS])
    assert registry.get("demo").manifest.root == twin
    with pytest.raises(PackError, match="generator"):
        registry.get("demo").get("generator")
    assert "demo" in registry.broken()
    assert registry.get("demo").manifest.root == REPO_PACKS / "demo"
    registry.get("demo").get("generator")
    assert "demo" not in registry.broken()
    [info] = [i for i in registry.describe({}) if i["name"] == "demo"]
    assert any(p["path"] == str(twin) for p in info["passed_over"])
