"""The Krita plugin's logic against a fake Krita API and a real engine process (the
test-only method). Real Krita runs the same code in tests/test_krita_real.py."""

from __future__ import annotations

import random
import struct
import sys
import time
from array import array
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins" / "krita"))

from wordbrush.controller import Controller, EngineState, RunOptions  # noqa: E402
from wordbrush.document import LAYER_PREFIX, KritaDocument  # noqa: E402
from wordbrush.pixels import (  # noqa: E402
    DEPTHS,
    UnsupportedImage,
    from_wire,
    layout_for,
    to_wire,
    transfer_for,
)
from wordbrush.settings import Settings  # noqa: E402

from tests.support.engine import EngineProcess  # noqa: E402
from tests.support.fake_krita import BPP, FakeDocument  # noqa: E402

W, H = 48, 40


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[EngineState, str]] = []
        self.messages: list[tuple[str, bool]] = []
        self.progress: list[tuple[float, str]] = []
        self.previews = 0
        self.busy: list[bool] = []
        self.offers = 0
        self.live_previews: list[str] = []
        self.variations: list[tuple[int | None, int]] = []

    def on_status(self, state: EngineState, text: str) -> None:
        self.states.append((state, text))

    def on_offer(self, welcome: object) -> None:
        self.offers += 1

    def on_busy(self, busy: bool) -> None:
        self.busy.append(busy)

    def on_progress(self, fraction: float, text: str) -> None:
        self.progress.append((fraction, text))

    def on_preview(self, width: int, height: int, rgba8: bytes) -> None:
        assert len(rgba8) == width * height * 4
        self.previews += 1

    def on_message(self, text: str, error: bool) -> None:
        self.messages.append((text, error))

    def on_live_preview(self, width: int, height: int, rgba8: bytes, text: str) -> None:
        self.live_previews.append(text)

    def on_variations(self, shown: int | None, count: int) -> None:
        self.variations.append((shown, count))


def _document(depth: str = "U8", select: bool = True, seed: int = 0) -> FakeDocument:
    rnd = random.Random(seed)
    doc = FakeDocument(W, H, depth, profile="sRGB-elle-V2-srgbtrc.icc" if depth == "U8"
                       else "sRGB-elle-V2-g10.icc")
    if depth == "F32":
        values = [rnd.random() for _ in range(W * H * 4)]
        pixels = array("f", values).tobytes()
    elif depth == "F16":
        pixels = struct.pack(f"<{W * H * 4}e", *[rnd.random() for _ in range(W * H * 4)])
    else:
        pixels = bytes(rnd.randrange(256) for _ in range(W * H * BPP[depth]))
    doc.add_layer("paint", pixels)
    if select:
        mask = bytearray(W * H)
        for y in range(12, 28):
            for x in range(14, 34):
                mask[y * W + x] = 255 if x > 14 else 100
        doc.set_selection(bytes(mask))
    return doc


def _wait(controller: Controller, rec: Recorder, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while controller.job is not None and time.monotonic() < deadline:
        controller.pump()
        controller.tick()
        time.sleep(0.02)
    assert controller.job is None, "the job did not finish"


@pytest.fixture()
def controller(engine: EngineProcess) -> tuple[Controller, Recorder]:
    rec = Recorder()
    ctl = Controller(rec, Settings(endpoint=engine.endpoint, autostart=False, timeout_s=10))
    assert ctl.connect()
    yield ctl, rec
    ctl.shutdown()


# ---------------------------------------------------------------------- pixels


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_pixel_round_trip(depth: str) -> None:
    layout = DEPTHS[depth]
    doc = _document(depth)
    raw = bytes(doc.active.pixels)
    wire = to_wire(raw, W, H, layout)
    assert from_wire(wire, W, H, layout) == raw


def test_u8_is_bgra_in_krita_and_rgba_on_the_wire() -> None:
    wire = to_wire(bytes([1, 2, 3, 4]), 1, 1, DEPTHS["U8"])
    assert wire == bytes([3, 2, 1, 4])


def test_other_colour_models_get_a_clear_message() -> None:
    with pytest.raises(UnsupportedImage, match="Convert"):
        layout_for("CMYKA", "U8")
    assert transfer_for("sRGB-elle-V2-g10.icc") == "linear"
    assert transfer_for("sRGB-elle-V2-srgbtrc.icc") == "srgb"


def test_region_reads_only_the_padded_selection_bounds() -> None:
    doc = _document()
    region = KritaDocument(doc).region({"kind": "pad"})
    assert region.mask is not None
    assert region.layer.width * region.layer.height <= W * H
    assert doc.reads and all((w, h) == (region.layer.width, region.layer.height)
                             for _, _, _, w, h in doc.reads)
    whole = KritaDocument(_document(select=False)).region({"kind": "pad"})
    assert whole.mask is None and "whole layer" in whole.note
    assert (whole.layer.width, whole.layer.height) == (W, H)


# ---------------------------------------------------------------------- engine


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_result_is_a_new_layer_above_and_nothing_else_changes(
        controller: tuple[Controller, Recorder], depth: str) -> None:
    ctl, rec = controller
    doc = _document(depth)
    source = doc.active
    before = bytes(source.pixels)
    assert ctl.run(doc, RunOptions("a green star", method="test-invert", pack="test-pack",
                                   seed=3))
    _wait(ctl, rec)
    assert rec.messages[-1][1] is False, rec.messages
    layers = doc.layers()
    assert [n.name() for n in layers] == ["paint", f"{LAYER_PREFIX}a green star"]
    assert bytes(source.pixels) == before and source.writes == 0
    new = layers[1]
    bpp = BPP[depth]
    mask = doc.selection().mask
    for i in range(W * H):
        if mask[i] == 0:  # alpha 0 outside the selection, in every depth
            assert not any(new.pixels[i * bpp + bpp * 3 // 4:(i + 1) * bpp])
    assert any(new.pixels)
    assert rec.busy == [True, False]
    assert rec.progress and rec.previews >= 1


def _three_variations(ctl: Controller, rec: Recorder) -> tuple[FakeDocument, object]:
    """A document after an edit with three variations, and their group."""
    doc = _document()
    assert ctl.run(doc, RunOptions("a red circle", method="test-invert", pack="test-pack",
                                   variations=3, params={"jitter": 0.5}))
    _wait(ctl, rec)
    return doc, doc.layers()[1]


def test_variations_go_in_a_group_with_one_visible(
        controller: tuple[Controller, Recorder]) -> None:
    ctl, rec = controller
    _, group = _three_variations(ctl, rec)
    assert group.type() == "grouplayer" and group.name() == f"{LAYER_PREFIX}a red circle"
    top_first = group.children[::-1]
    assert [c.visible for c in top_first] == [True, False, False]
    assert top_first[0].name().endswith("#1")
    assert rec.variations[-1] == (0, 3)  # the docker offers to step through them


def _flatten(doc: FakeDocument, group):
    """Krita's Flatten Layer, as the fake sees it: the group's visible child, alone, in
    the group's place."""
    shown = [c for c in group.children if c.visible]
    assert len(shown) == 1
    kept = doc.createNode(group.name() + " Merged", "paintlayer")
    kept.pixels[:] = shown[0].pixels
    parent = group.parent
    parent.children[parent.children.index(group)] = kept
    kept.parent, group.parent = parent, None
    return kept


def test_stepping_through_variations_and_keeping_one(
        controller: tuple[Controller, Recorder]) -> None:
    ctl, rec = controller
    doc, group = _three_variations(ctl, rec)
    top_first = group.children[::-1]
    ctl.step_variation(1)
    assert [c.visible for c in top_first] == [False, True, False]
    ctl.step_variation(-2)  # wraps round
    assert [c.visible for c in top_first] == [False, False, True]
    assert rec.variations[-1] == (2, 3)
    third = bytes(top_first[2].pixels)
    ctl.keep_variation(_flatten)
    kept = doc.layers()[1]
    assert kept.type() == "paintlayer" and kept.name() == f"{LAYER_PREFIX}a red circle #3"
    assert bytes(kept.pixels) == third and len(doc.layers()) == 2
    assert rec.variations[-1] == (None, 0) and ctl.choice is None
    assert "kept" in rec.messages[-1][0] and not rec.messages[-1][1]


def test_a_deleted_variations_group_is_said(controller: tuple[Controller, Recorder]) -> None:
    ctl, rec = controller
    doc = _document()
    assert ctl.run(doc, RunOptions("a red circle", method="test-invert", pack="test-pack",
                                   variations=2, params={"jitter": 0.5}))
    _wait(ctl, rec)
    doc.layers()[1].remove()
    ctl.step_variation(1)
    assert ctl.choice is None and rec.variations[-1] == (None, 0)
    assert "gone" in rec.messages[-1][0] and rec.messages[-1][1]


def _edit_under_way(ctl: Controller, steps: int) -> FakeDocument:
    """A new document whose edit (``steps`` of 0.05 s) is a few steps in."""
    doc = _document()
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack",
                                   params={"steps": steps, "delay": 0.05}))
    time.sleep(0.2)
    return doc


def test_cancel_mid_job_leaves_the_document_as_it_was(
        controller: tuple[Controller, Recorder]) -> None:
    ctl, rec = controller
    doc = _edit_under_way(ctl, 50)
    ctl.cancel()
    _wait(ctl, rec)
    assert [n.name() for n in doc.layers()] == ["paint"]
    assert "cancelled" in rec.messages[-1][0]


def test_reconnecting_during_an_edit_keeps_it(controller: tuple[Controller, Recorder],
                                              tmp_path: Path) -> None:
    """Reconnect (or OK in Engine…) mid-edit: the new connection takes the job over and
    its result still arrives; with no engine left to answer, the docker is freed with a
    message instead of staying busy."""
    ctl, rec = controller
    doc = _document()
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack",
                                   params={"steps": 20, "delay": 0.05}))
    time.sleep(0.2)
    assert ctl.connect()  # a new client, a new routing id
    _wait(ctl, rec)
    assert rec.messages[-1][1] is False
    assert rec.messages[-1][0].startswith("added 1 layer")
    assert [n.name() for n in doc.layers()] == ["paint", "[wordbrush] x"]
    assert ctl.run(_document(), RunOptions("x", method="test-invert", pack="test-pack",
                                           params={"steps": 50, "delay": 0.05}))
    ctl.settings.endpoint = f"ipc://{tmp_path}/none.sock"
    assert not ctl.connect()
    assert ctl.job is None and rec.busy[-1] is False
    assert "lost" in rec.messages[-1][0] and rec.messages[-1][1] is True


def test_bad_input_gets_a_message_not_a_crash(controller: tuple[Controller, Recorder]) -> None:
    ctl, rec = controller
    assert not ctl.run(_document(), RunOptions("   "))
    assert "description" in rec.messages[-1][0]
    cmyk = _document()
    cmyk.model = "CMYKA"
    assert not ctl.run(cmyk, RunOptions("a red star", method="test-invert"))
    assert "RGB" in rec.messages[-1][0]
    assert not ctl.run(None, RunOptions("a red star"))
    assert ctl.run(_document(), RunOptions("x", method="test-invert", pack="test-pack",
                                           params={"steps": 100000}))
    _wait(ctl, rec)
    assert rec.messages[-1][1] is True and "steps" in rec.messages[-1][0]


def test_unreachable_engine_is_reported(tmp_path: Path) -> None:
    rec = Recorder()
    ctl = Controller(rec, Settings(endpoint=f"ipc://{tmp_path}/none.sock", autostart=False))
    assert not ctl.connect()
    assert rec.states[-1][0] == EngineState.UNREACHABLE
    assert not ctl.run(_document(), RunOptions("a red star"))


def test_autostart_without_a_command_says_what_to_run(tmp_path: Path) -> None:
    rec = Recorder()
    ctl = Controller(rec, Settings(endpoint=f"ipc://{tmp_path}/none.sock", autostart=True))
    assert not ctl.connect()
    assert "install.py" in rec.states[-1][1]


def test_engine_dying_mid_job_changes_nothing(tmp_path: Path) -> None:
    proc = EngineProcess(tmp_path)
    try:
        rec = Recorder()
        ctl = Controller(rec, Settings(endpoint=proc.endpoint, autostart=False, timeout_s=3))
        assert ctl.connect()
        doc = _document()
        assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack",
                                       params={"steps": 200, "delay": 0.05}))
        time.sleep(0.3)
        proc.proc.kill()
        _wait(ctl, rec, timeout=20)
        assert [n.name() for n in doc.layers()] == ["paint"]
        assert rec.messages[-1][1] is True and "not changed" in rec.messages[-1][0]
        assert ctl.state == EngineState.UNREACHABLE
    finally:
        proc.stop()


def test_a_damaged_settings_file_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    """Values of the wrong kind fall back to their defaults, with a note; a file that is
    not a JSON object is kept aside (install.py's engine command and keys are in it) and
    the defaults are used; a saved file has no note in it."""
    import json

    path = tmp_path / "wordbrush.json"
    path.write_text(json.dumps({"endpoint": "ipc:///e", "variations": "2", "seed": 1.5,
                                "timeout_s": None, "engine_command": "wordbrush serve",
                                "autostart": False, "strength": 1, "unknown": 3}))
    settings = Settings.load(path)
    assert (settings.endpoint, settings.autostart, settings.strength) == ("ipc:///e", False, 1)
    assert (settings.variations, settings.seed, settings.timeout_s) == (1, None, 30.0)
    assert settings.engine_command == []
    assert "ignored engine_command, variations, seed, timeout_s" in settings.note
    for text in (b"[]", b"null", b"{not json", b'{"endpoint": "\xff"}'):
        path.write_bytes(text)
        settings = Settings.load(path)
        assert settings == Settings() and "kept as wordbrush.json.bad" in settings.note
        assert (tmp_path / "wordbrush.json.bad").read_bytes() == text
    settings.save(path)
    assert "note" not in json.loads(path.read_text())
    assert Settings.load(tmp_path / "missing.json").note == ""


def test_autostart_serves_the_configured_endpoint_and_never_starts_two(tmp_path: Path) -> None:
    """The engine started is told the endpoint the docker will call; one that has not
    answered in time is waited on again, not joined by a second engine."""
    from protocol.launch import ENGINE_START_S, command_for

    endpoint = f"ipc://{tmp_path}/none.sock"
    assert command_for(["wordbrush", "serve"], "") == ["wordbrush", "serve"]
    assert command_for(["w", "serve", "--endpoint", "x"], endpoint) == ["w", "serve",
                                                                       "--endpoint", "x"]

    class Alive:
        def poll(self) -> None:
            return None

    launched: list[list[str]] = []

    def launcher(command: list[str], log: Path) -> Alive:
        launched.append(command)
        return Alive()

    rec = Recorder()
    ctl = Controller(rec, Settings(endpoint=endpoint, autostart=True,
                                   engine_command=["wordbrush", "serve"]), launcher=launcher)
    assert not ctl.connect()
    assert launched == [["wordbrush", "serve", "--endpoint", endpoint]]
    assert ctl.state == EngineState.STARTING
    ctl._starting_since -= ENGINE_START_S + 1  # the engine is taking too long
    assert not ctl.connect()
    assert ctl.state == EngineState.UNREACHABLE and "did not answer" in rec.states[-1][1]
    assert not ctl.connect()  # Run or Reconnect again: the same engine, waited on
    assert len(launched) == 1 and ctl.state == EngineState.STARTING
    assert "started earlier" in rec.states[-1][1]
    # another local endpoint chosen in Engine…: an engine for that one
    other = f"ipc://{tmp_path}/other.sock"
    ctl.settings.endpoint = other
    ctl._starting_since = None
    assert not ctl.connect()
    assert launched[-1] == ["wordbrush", "serve", "--endpoint", other] and len(launched) == 2
    # while it loads, the 0.5 s timer says hello every 2 s only (each try blocks the UI)
    tries: list[bool] = []
    ctl.connect = lambda start=True: tries.append(start) or False  # type: ignore[method-assign]
    for _ in range(3):
        ctl.tick()
    assert tries == [True]


def test_any_layer_kind_is_read_as_it_shows(controller: tuple[Controller, Recorder]) -> None:
    """A vector, group, file, clone or fill layer has no pixels of its own in libkis: its
    projection is read. A layer in another colour space than the image is refused with
    what to do."""
    ctl, rec = controller
    doc = _document()
    vector = doc.layers()[0]
    vector._type = "vectorlayer"
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack"))
    _wait(ctl, rec)
    assert rec.messages[-1][0].startswith("added 1 layer"), rec.messages[-1]
    assert [n.name() for n in doc.layers()] == ["paint", "[wordbrush] x"]
    other = _document()
    other.layers()[0].depth = "F32"
    assert not ctl.run(other, RunOptions("x", method="test-invert", pack="test-pack"))
    assert "Convert Layer Color Space" in rec.messages[-1][0]


@pytest.mark.parametrize("change,message,error", [
    ("depth", "colour space changed", True),
    ("size", "canvas was resized", True),
    ("closed", "document was closed", False),  # the artist's doing: the edit is cancelled
])
def test_a_document_changed_during_the_edit_gets_nothing(
        controller: tuple[Controller, Recorder], change: str, message: str,
        error: bool) -> None:
    """The pixels would land in the wrong format or place: say so, add nothing."""
    ctl, rec = controller
    doc = _document()
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack",
                                   params={"steps": 10, "delay": 0.05}))
    if change == "depth":
        doc.depth = "U16"
    elif change == "size":
        doc._w += 10
    else:
        doc.close()
    _wait(ctl, rec)
    assert message in rec.messages[-1][0] and rec.messages[-1][1] is error
    assert [n.name() for n in doc.layers()] == ["paint"]


def test_an_area_too_large_for_the_engine_is_refused_before_it_is_read() -> None:
    """Reading and converting a huge 16-bit layer takes seconds; the engine's limits are
    known from its welcome, so the refusal comes first, saying what to do."""
    from protocol.framing import Limits, area_too_large

    assert area_too_large(8192, 8192, "rgba8", Limits()) is None
    assert "select a smaller region" in area_too_large(8193, 10, "a8", Limits())
    assert "1024 MiB as rgbaf32" in area_too_large(8192, 8192, "rgbaf32", Limits())
    doc = _document("U16", select=False)
    with pytest.raises(ValueError, match=r"48×40 .*at most 32 pixels a side"):
        KritaDocument(doc).region({"kind": "pad"}, limits=Limits(max_side=32))
    assert not [r for r in doc.reads if r[0] == "paint"]  # no pixel was read


def test_cancel_means_nothing_is_added(controller: tuple[Controller, Recorder],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A result already on its way when Cancel is pressed is dropped; an engine that does
    not confirm a cancel (a first edit still loading its pack) frees the docker anyway."""
    ctl, rec = controller
    doc = _document()
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack"))
    time.sleep(1.0)  # done in the engine; its result waits unread
    ctl.cancel()
    _wait(ctl, rec)
    assert [n.name() for n in doc.layers()] == ["paint"]
    assert rec.messages[-1] == ("cancelled; the document was not changed", False)
    assert ctl.run(doc, RunOptions("x", method="test-invert", pack="test-pack",
                                   params={"steps": 100, "delay": 0.05}))
    assert ctl.client is not None
    monkeypatch.setattr(ctl.client, "cancel", lambda job: None)  # never confirmed
    ctl.cancel()
    assert ctl.job is not None
    ctl.job.cancel_asked -= 11
    ctl.tick()
    assert ctl.job is None and rec.busy[-1] is False and "cancelled" in rec.messages[-1][0]
    time.sleep(0.5)
    ctl.pump()
    assert [n.name() for n in doc.layers()] == ["paint"]


def test_closing_the_document_cancels_its_edit(controller: tuple[Controller, Recorder]) -> None:
    """The result would have nowhere to go: the engine is told to stop, the docker frees."""
    ctl, rec = controller
    doc = _edit_under_way(ctl, 200)
    doc.close()
    ctl.tick()
    _wait(ctl, rec, timeout=10)
    assert ctl.job is None and rec.busy[-1] is False
    assert "cancel" in rec.messages[-1][0] and rec.messages[-1][1] is False


def test_an_older_engine_is_asked_for_nothing_it_cannot_take(
        controller: tuple[Controller, Recorder]) -> None:
    """A 16-bit float layer goes as rgbaf16, which an engine older than the plugin does
    not take: the docker says to update it, and nothing is sent."""
    import dataclasses

    ctl, rec = controller
    assert ctl.welcome is not None and "rgbaf16" in ctl.welcome.layer_formats
    ctl.welcome = dataclasses.replace(ctl.welcome, layer_formats=())  # as an older one says
    doc = _document("F16")
    assert not ctl.run(doc, RunOptions("a green star", method="test-invert", pack="test-pack"))
    assert "older than this plugin" in rec.messages[-1][0] and rec.messages[-1][1]
    assert ctl.job is None and len(doc.layers()) == 1
    assert ctl.run(_document("F32"), RunOptions("a green star", method="test-invert",
                                                pack="test-pack"))
    _wait(ctl, rec)


@pytest.mark.parametrize("depth", ["F16", "F32"])
def test_nan_inside_the_selection_is_refused_before_sending(
        controller: tuple[Controller, Recorder], depth: str) -> None:
    """A float layer with a NaN inside the selection: a sentence with how many, no job,
    no new layer; Krita's F16 and F32 pixels are RGBA on the wire as they are."""
    ctl, rec = controller
    doc = _document(depth)
    size, fmt = (2, "<e") if depth == "F16" else (4, "<f")
    at = ((20 * W + 20) * 4 + 1) * size  # the green of pixel (20, 20), inside
    doc.active.pixels[at:at + size] = struct.pack(fmt, float("nan"))
    assert not ctl.run(doc, RunOptions("a green star", method="test-invert", pack="test-pack"))
    assert rec.messages[-1][1] is True
    assert "1 pixel inside the selection holds NaN" in rec.messages[-1][0]
    assert [n.name() for n in doc.layers()] == ["paint"] and ctl.job is None
