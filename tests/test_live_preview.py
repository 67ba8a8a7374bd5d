"""Live preview: one pass, one image, never a layer, the newest text wins. The test below
stamps each preview's arrival after the docker's pause and prints the figures; the 300 ms
goal itself is measured on an idle machine by ``wordbrush bench preview`` (BENCHMARKS.md),
since a shared test machine's load would make a timed assertion flaky. Here a preview
must come within a few times the goal: one pass, never the chosen optimiser's seconds."""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.packs import PackRegistry
from engine.runner import EditRunner
from protocol.errors import WordbrushError
from protocol.framing import Buffer
from protocol.messages import PREVIEW_SIDE, request_for_selection
from tests.support.canvas import random_canvas
from tests.support.engine import EngineProcess
from tests.support.fake_krita import FakeDocument
from tests.support.packs import make_pack

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins" / "krita"))

from wordbrush.controller import Controller, RunOptions  # noqa: E402
from wordbrush.settings import Settings  # noqa: E402

#: the issue's goal: the preview shows within this long after the docker's 300 ms pause
PREVIEW_GOAL_S = 0.3
#: what this test holds a preview to, under any load (paint-by-word's edit takes seconds)
PREVIEW_BOUND_S = 1.0


def _scene() -> tuple[np.ndarray, np.ndarray]:
    return random_canvas(3, 96, 80, (24, 20, 72, 60))


def _request(pack: str, method: str | None, preview: int, params: dict | None = None):
    rgba, sel = _scene()
    request = request_for_selection(Buffer("layer", rgba.shape[1], rgba.shape[0], "rgba8",
                                           rgba.tobytes()), sel.tobytes(),
                                    {"kind": "box", "factor": 0.7}, prompt="a blue star",
                                    method=method, pack=pack, params=params or {}, seed=1)
    return dataclasses.replace(request, preview=preview)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> EditRunner:
    folder = tmp_path_factory.mktemp("packs")
    make_pack(folder / "slow", name="slow")  # no CLIPInverter, no directions: nothing one-pass
    return EditRunner(PackRegistry([REPO / "packs", folder]), "cpu")


def test_a_preview_is_one_image_of_the_crop_with_the_edit(runner: EditRunner) -> None:
    """Asked of paint-by-word (an optimisation), the preview runs the pack's one-pass
    method and drops paint-by-word's own tuning; it answers one opaque rgba8 image of the
    crop, whose pixels outside the selection are the layer's, bit for bit."""
    request = _request("demo", "paint-by-word", 512, params={"steps": 5, "strength": 0.7})
    plan = runner.plan(request)
    assert plan.method == runner.preview_method("demo") == "clipinverter"
    assert "steps" not in plan.params and plan.params["strength"] == 0.7
    out = runner.run_local(request)
    assert out.info["preview"] is True and out.info["method"] == "clipinverter"
    assert len(out.patches) == 1 and out.offset == request.offset
    image = out.patches[0]
    assert (image.format, image.width, image.height) == ("rgba8", request.layer.width,
                                                         request.layer.height)
    shown = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 4)
    layer = np.frombuffer(bytes(request.layer.data), np.uint8).reshape(shown.shape)
    mask = np.frombuffer(bytes(request.mask.data), np.uint8).reshape(shown.shape[:2])
    assert np.array_equal(shown[mask == 0], layer[mask == 0])
    assert not np.array_equal(shown[mask == 255], layer[mask == 255])  # the edit shows


def test_a_preview_fits_the_side_asked_for(runner: EditRunner) -> None:
    out = runner.run_local(_request("demo", "clipinverter", 32))
    image = out.patches[0]
    assert max(image.width, image.height) == 32 and image.format == "rgba8"


def test_a_pack_without_a_one_pass_method_says_so(runner: EditRunner) -> None:
    assert runner.preview_method("slow") is None
    with pytest.raises(WordbrushError, match="no one-pass method"):
        runner.plan(_request("slow", "paint-by-word", 128))
    describe = {p["name"]: p for p in runner.describe()["packs"]}
    assert describe["demo"]["preview_method"] == "clipinverter"
    assert describe["slow"]["preview_method"] is None


# ---------------------------------------------------------------------- the docker's side


class Watcher:
    def __init__(self) -> None:
        self.live: list[tuple[float, str, int, int]] = []
        self.messages: list[tuple[str, bool]] = []

    def on_status(self, *_: object) -> None: ...
    def on_offer(self, *_: object) -> None: ...
    def on_busy(self, *_: object) -> None: ...
    def on_progress(self, *_: object) -> None: ...
    def on_preview(self, *_: object) -> None: ...
    def on_variations(self, *_: object) -> None: ...

    def on_message(self, text: str, error: bool) -> None:
        self.messages.append((text, error))

    def on_live_preview(self, width: int, height: int, rgba8: bytes, text: str) -> None:
        assert len(rgba8) == width * height * 4
        self.live.append((time.monotonic(), text, width, height))


def _document() -> FakeDocument:
    rnd = random.Random(5)
    width, height = 120, 100
    doc = FakeDocument(width, height, "U8", profile="sRGB-elle-V2-srgbtrc.icc")
    doc.add_layer("paint", bytes(rnd.randrange(256) for _ in range(width * height * 4)))
    mask = bytearray(width * height)
    for y in range(30, 70):
        mask[y * width + 40:y * width + 90] = b"\xff" * 50
    doc.set_selection(bytes(mask))
    return doc


def _until(ctl: Controller, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ctl.pump()
        time.sleep(0.002)
    assert done(), "nothing arrived"


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory: pytest.TempPathFactory):
    proc = EngineProcess(tmp_path_factory.mktemp("demo-engine"), "--pack-dir",
                         str(REPO / "packs"))
    yield proc
    proc.stop()


@pytest.fixture()
def docker(demo_engine: EngineProcess):
    watcher = Watcher()
    ctl = Controller(watcher, Settings(endpoint=demo_engine.endpoint, autostart=False,
                                       timeout_s=20))
    assert ctl.connect() and ctl.welcome is not None and ctl.welcome.previews
    yield ctl, watcher
    ctl.shutdown()


def test_the_preview_comes_in_one_pass_and_adds_no_layer(docker) -> None:
    ctl, watcher = docker
    doc = _document()
    layers = len(doc.layers())
    options = RunOptions(prompt="a red circle", method="paint-by-word", pack="demo")
    assert ctl.preview(doc, options) is None  # the first loads the pack: not timed
    _until(ctl, lambda: watcher.live)
    times = []
    for prompt in ("a blue star", "a green square", "a big red circle", "a yellow triangle",
                   "a small blue square"):
        before = len(watcher.live)
        start = time.monotonic()  # the docker's 300 ms pause has just ended
        assert ctl.preview(doc, RunOptions(prompt=prompt, method="paint-by-word",
                                           pack="demo")) is None
        _until(ctl, lambda before=before: len(watcher.live) > before)
        times.append(watcher.live[-1][0] - start)
        assert watcher.live[-1][1].startswith("preview: clipinverter")
    median = sorted(times)[len(times) // 2]
    print(f"live preview on the demo pack: median {median * 1000:.0f} ms, worst "
          f"{max(times) * 1000:.0f} ms after the pause (goal <= {PREVIEW_GOAL_S * 1000:.0f})")
    assert median <= PREVIEW_BOUND_S
    assert len(doc.layers()) == layers  # a preview never adds a layer
    assert max(w for _, _, w, _ in watcher.live) <= PREVIEW_SIDE
    assert not [m for m in watcher.messages if m[1]]


def test_the_newest_text_wins(docker) -> None:
    """Three previews asked for faster than the engine answers: the older two are
    cancelled, and only the newest is shown."""
    ctl, watcher = docker
    doc = _document()
    ctl.preview(doc, RunOptions(prompt="a red circle", pack="demo"))
    _until(ctl, lambda: watcher.live)
    shown = len(watcher.live)
    for prompt in ("a blue star", "a green star", "a yellow star"):
        assert ctl.preview(doc, RunOptions(prompt=prompt, pack="demo")) is None
    last = ctl.live
    assert last is not None
    _until(ctl, lambda: ctl.live is None)
    time.sleep(0.5)  # anything of the older two would arrive by now
    ctl.pump()
    assert len(watcher.live) == shown + 1


def test_no_preview_during_an_edit_or_without_text(docker) -> None:
    ctl, watcher = docker
    doc = _document()
    assert "type a description" in (ctl.preview(doc, RunOptions(prompt="  ")) or "")
    assert ctl.preview(None, RunOptions(prompt="a star")) == "open an image first"
    assert ctl.run(doc, RunOptions(prompt="a blue star", method="paint-by-word", pack="demo",
                                   params={"steps": 3}))
    assert ctl.preview(doc, RunOptions(prompt="a red star", pack="demo")) == \
        "an edit is running"
    _until(ctl, lambda: ctl.job is None, timeout=120)
    assert not watcher.live
