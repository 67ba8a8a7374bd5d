"""The GIMP plug-in's logic (wordbrush_core) against a fake GIMP image and a real engine
process with the test-only method. Real GIMP runs the same code through wordbrush.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from array import array
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins" / "gimp" / "wordbrush"))

from wordbrush_core import (  # noqa: E402
    EditOptions,
    PixelFormat,
    PluginError,
    edit_selection,
    pixel_format,
)

from protocol.launch import launch_detached  # noqa: E402
from protocol.regions import Box  # noqa: E402
from tests.support.engine import EngineProcess, write_test_pack  # noqa: E402

W, H = 200, 150


class FakeImage:
    """An RGB image with one drawable at an offset, a selection, and recorded writes."""

    def __init__(self, precision: str = "u8", select: bool = True, rgb: bool = True) -> None:
        rng = np.random.default_rng(0)
        self._precision, self._rgb = precision, rgb
        self.profiled = False
        self.closed: str | None = None
        self.offset = (5, 3)
        self.layer = rng.random((H - 6, W - 10, 4)).astype(np.float32)
        self.layer[..., 3] = 1.0
        self.mask = np.zeros((H, W), np.uint8)
        if select:
            self.mask[12:30, 20:44] = 255
            self.mask[12:30, 20] = 80
        self.added: list[tuple[list[str], list[tuple[bytes, Box]], str, str | None]] = []
        self.progress_calls: list[tuple[float, str]] = []
        self.previews: list[tuple[int, int, bytes]] = []
        self.idles = 0
        self.on_idle = None  # the dialog's Cancel, pressed while the engine works
        self.reads: list[Box] = []

    def precision(self) -> str:
        return self._precision

    def own_profile(self) -> bool:
        return self.profiled

    def is_rgb(self) -> bool:
        return self._rgb

    def gone(self) -> str | None:
        return self.closed

    def drawable_box(self) -> Box:
        return Box(self.offset[0], self.offset[1], self.layer.shape[1], self.layer.shape[0])

    def selection_box(self) -> Box | None:
        ys, xs = np.nonzero(self.mask)
        if not len(xs):
            return None
        return Box(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                   int(ys.max() - ys.min() + 1))

    def read_pixels(self, box: Box, babl: str) -> bytes:
        self.reads.append(box)
        ox, oy = self.offset
        crop = self.layer[box.y - oy:box.y1 - oy, box.x - ox:box.x1 - ox]
        assert crop.shape[:2] == (box.h, box.w), "read outside the drawable"
        if babl.endswith("u8"):
            return (crop * 255).round().astype(np.uint8).tobytes()
        if babl.endswith("u16"):
            return (crop * 65535).round().astype("<u2").tobytes()
        if babl.endswith("half"):
            return crop.astype("<f2").tobytes()
        return crop.astype("<f4").tobytes()

    def read_mask(self, box: Box) -> bytes:
        return self.mask[box.y:box.y1, box.x:box.x1].tobytes()

    def add_layers(self, names, patches, babl, group_name) -> None:
        self.added.append((names, patches, babl, group_name))

    def progress(self, fraction: float, text: str) -> None:
        self.progress_calls.append((fraction, text))

    def preview(self, width: int, height: int, rgba8: bytes) -> None:
        assert len(rgba8) == width * height * 4
        self.previews.append((width, height, rgba8))

    def idle(self) -> None:
        self.idles += 1
        if self.on_idle is not None:
            self.on_idle()


def _options(engine: EngineProcess, **kw: object) -> EditOptions:
    base = {"prompt": "a green star", "method": "test-invert", "endpoint": engine.endpoint,
            "pack": "test-pack", "seed": 1}
    base.update(kw)
    return EditOptions(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("precision,babl,dtype", [
    ("u8-non-linear", "R'G'B'A u8", "u1"), ("u16-perceptual", "R'G'B'A u16", "<u2"),
    ("u16-linear", "RGBA u16", "<u2"), ("half-linear", "RGBA half", "<f2"),
    ("float-non-linear", "R'G'B'A float", "<f4"), ("double-linear", "RGBA float", "<f4")])
def test_result_layers_and_alpha(engine: EngineProcess, precision: str, babl: str,
                                 dtype: str) -> None:
    """GIMP's precision nicks (with hyphens): each image is read and written at its own
    depth and tone curve."""
    image = FakeImage(precision)
    text = edit_selection(image, _options(engine))
    assert text.startswith("added 1 layer")
    (names, patches, written_as, group), = image.added
    assert names == ["[wordbrush] a green star"] and group is None and written_as == babl
    data, box = patches[0]
    assert len(data) == box.w * box.h * 4 * np.dtype(dtype).itemsize
    # alpha is 0 wherever the selection is 0 (the patch sits at `box` in image coords)
    alpha = np.frombuffer(data, dtype).reshape(box.h, box.w, 4)[..., 3]
    sel = image.mask[box.y:box.y1, box.x:box.x1]
    assert (alpha[sel == 0] == 0).all() and alpha.max() > 0
    # only the padded selection bounds were read, never the whole drawable
    assert all(r.w * r.h < image.layer.shape[0] * image.layer.shape[1] for r in image.reads)
    assert image.progress_calls


def test_the_dialog_sees_progress_and_previews_and_can_cancel(engine: EngineProcess) -> None:
    """What the open dialog shows as the edit runs: the progress bar's steps, the method's
    preview images, and the UI kept alive (``idle``) while the engine works; its Cancel
    stops the job, and nothing is added."""
    image = FakeImage()
    edit_selection(image, _options(engine, params={"steps": 3, "delay": 0.3}))
    assert [t for _, t in image.progress_calls if t.startswith("step")] == \
        ["step 1", "step 2", "step 3"]
    assert image.previews and image.idles >= 5  # 0.9 s of work: the UI ran meanwhile
    cancel = threading.Event()
    image = FakeImage()
    image.on_idle = lambda: image.idles > 3 and cancel.set()
    with pytest.raises(PluginError, match="cancelled; nothing was changed"):
        edit_selection(image, _options(engine, params={"steps": 50, "delay": 0.2}),
                       cancel=cancel)
    assert image.added == []


def test_variations_make_a_group(engine: EngineProcess) -> None:
    image = FakeImage()
    edit_selection(image, _options(engine, variations=2, params={"jitter": 0.5}))
    names, patches, _, group = image.added[0]
    assert group == "[wordbrush] a green star"
    assert names == [f"{group} #1", f"{group} #2"] and len(patches) == 2


def test_no_selection_edits_the_whole_layer(engine: EngineProcess) -> None:
    image = FakeImage(select=False)
    edit_selection(image, _options(engine))
    _, patches, _, _ = image.added[0]
    assert patches[0][1] == image.drawable_box()


@pytest.mark.parametrize("change,message", [
    ({"prompt": "  "}, "description"),
    ({"params": {"steps": 100000}}, "could not edit"),
])
def test_failures_are_sentences(engine: EngineProcess, change: dict, message: str) -> None:
    image = FakeImage()
    with pytest.raises(PluginError, match=message):
        edit_selection(image, _options(engine, **change))
    assert image.added == []


def test_method_options_typed_as_text(engine: EngineProcess) -> None:
    image = FakeImage()
    edit_selection(image, _options(engine, variations=2,
                                   params_text="jitter=0.5, steps=2; fail=no"))
    _, patches, _, _ = image.added[0]
    assert patches[0][0] != patches[1][0]  # jitter reached the method: the seeds differ
    assert [t for _, t in image.progress_calls if t.endswith("step 2")]  # steps=2 reached it
    assert not [t for _, t in image.progress_calls if t.endswith("step 3")]
    for text, message in (("steps=abc", "'steps' must be an integer"),
                          ("bogus=1", "unknown parameter 'bogus'.*steps"),
                          ("steps", "not NAME=VALUE"),
                          ("steps=5000", "largest allowed is 1000")):
        with pytest.raises(PluginError, match=message):
            edit_selection(FakeImage(), _options(engine, params_text=text))


def test_not_rgb_and_unreachable(engine: EngineProcess, tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="RGB"):
        edit_selection(FakeImage(rgb=False), _options(engine))
    image = FakeImage()
    with pytest.raises(PluginError, match="no wordbrush engine answers"):
        edit_selection(image, _options(engine, endpoint=f"ipc://{tmp_path}/none.sock"))
    assert image.added == []


def test_a_local_engine_is_started_where_none_answers(tmp_path: Path) -> None:
    """As Krita does: the command install.py wrote, started detached, waited for with
    progress; the next edit finds it running."""
    endpoint = f"ipc://{tmp_path}/started.sock"
    packs = write_test_pack(tmp_path / "packs")
    command = [sys.executable, "-m", "engine", "serve", "--endpoint", endpoint, "--device",
               "cpu", "--pack-dir", str(packs), "--extra-methods", "tests.support.fake_methods"]
    started: list = []

    def launcher(cmd: list[str], log: Path) -> subprocess.Popen:
        started.append((cmd, log, launch_detached(cmd, log)))
        return started[-1][2]

    options = EditOptions("a green star", method="test-invert", endpoint=endpoint,
                          pack="test-pack", seed=1, engine_command=command)
    try:
        image = FakeImage()
        assert edit_selection(image, options, launcher=launcher).startswith("added 1 layer")
        assert [(cmd, log.name) for cmd, log, _ in started] == [
            (command, "gimp-engine.log")]
        assert image.progress_calls[0][1].startswith("starting the local engine")
        again = FakeImage()
        edit_selection(again, options, launcher=launcher)
        assert len(started) == 1 and again.added  # the engine kept serving
        assert not [t for _, t in again.progress_calls if t.startswith("starting")]
    finally:
        for _, _, proc in started:
            proc.terminate()
            proc.wait(15)


def test_when_no_engine_is_started(tmp_path: Path) -> None:
    """Nothing configured, autostart off, a remote endpoint, or an engine that dies at
    start-up: a sentence each, and nothing added."""
    none = f"ipc://{tmp_path}/none.sock"
    launched: list = []

    def launcher(cmd: list[str], log: Path) -> subprocess.Popen:
        launched.append(cmd)
        return subprocess.Popen(cmd)

    image = FakeImage()
    for options, message in (
            (EditOptions("x", endpoint=none), "none is configured to start: run `python3 "
                                              "install.py`"),
            (EditOptions("x", endpoint=none, engine_command=["wordbrush", "serve"],
                         autostart=False), r"Start one with `wordbrush serve`"),
            (EditOptions("x", endpoint="tcp://192.0.2.1:47615", timeout_s=1,
                         engine_command=["wordbrush", "serve"]), "Start one with"),
            (EditOptions("x", endpoint=none,
                         engine_command=[sys.executable, "-c", "raise SystemExit(3)"]),
             "exited at start-up .see .*gimp-engine.log"),
            (EditOptions("x", endpoint=none, engine_command=[str(tmp_path / "missing")]),
             "no wordbrush engine answers at .*could not start")):
        with pytest.raises(PluginError, match=message):
            edit_selection(image, options, launcher=launcher)
    # each told the endpoint the plug-in calls
    assert launched == [[sys.executable, "-c", "raise SystemExit(3)", "--endpoint", none],
                        [str(tmp_path / "missing"), "--endpoint", none]] and image.added == []
    settings = {"engine_command": ["/v/bin/wordbrush", "serve"], "autostart": False}
    filled = EditOptions("x").with_settings(settings)
    assert filled.engine_command == ["/v/bin/wordbrush", "serve"] and not filled.autostart


def test_plugin_file_is_executable_and_named_like_its_folder() -> None:
    script = REPO / "plugins" / "gimp" / "wordbrush" / "wordbrush.py"
    assert script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/usr/bin/env python3")
    assert array  # the core stays pure Python: no numpy in the plug-in
    core = (script.parent / "wordbrush_core.py").read_text()
    assert "import numpy" not in core and "import torch" not in core


def test_settings_fill_what_the_arguments_left_empty(tmp_path: Path) -> None:
    from wordbrush_core import load_settings

    (tmp_path / "wordbrush.json").write_text('{"endpoint": "tcp://box:47615", '
                                             '"server_key": "/k/server.key"}')
    settings = load_settings(tmp_path)
    opts = EditOptions("x").with_settings(settings)
    assert opts.endpoint == "tcp://box:47615" and opts.server_key == "/k/server.key"
    assert EditOptions("x", endpoint="ipc:///a").with_settings(settings).endpoint == "ipc:///a"
    assert load_settings(tmp_path / "missing") == {}
    with pytest.raises(PluginError, match="key files"):
        edit_selection(FakeImage(), opts)


def test_pixel_formats_follow_gimps_precision() -> None:
    assert pixel_format("u8-non-linear") == PixelFormat("R'G'B'A u8", "rgba8", "srgb")
    assert pixel_format("u8-linear") == PixelFormat("RGBA u8", "rgba8", "linear")
    assert pixel_format("half-perceptual") == PixelFormat("R'G'B'A half", "rgbaf16", "srgb")
    assert pixel_format("u32-linear") == PixelFormat("RGBA float", "rgbaf32", "linear")
    # an image with its own profile: float, which babl does not clip to sRGB's gamut
    assert pixel_format("u8-non-linear", own_profile=True).wire == "rgbaf32"
    with pytest.raises(PluginError, match="precision"):
        pixel_format("u4-linear")


@pytest.mark.parametrize("change,message", [
    ("closed", "the image was closed during the edit; nothing was added"),
    ("moved", "moved, resized or converted during the edit; nothing was added"),
    ("converted", "moved, resized or converted during the edit; nothing was added"),
])
def test_an_image_changed_during_the_edit_gets_nothing(engine: EngineProcess, change: str,
                                                       message: str) -> None:
    """GIMP stays usable while the engine works: a patch made for the layer as it was
    would land in the wrong place, or in no image at all."""
    image = FakeImage()

    def meanwhile(fraction: float, text: str) -> None:
        if change == "closed":
            image.closed = "the image was closed during the edit"
        elif change == "moved":
            image.offset = (9, 9)
        else:
            image._precision = "float-linear"

    image.progress = meanwhile  # type: ignore[method-assign]
    with pytest.raises(PluginError, match=message):
        edit_selection(image, _options(engine))
    assert image.added == []


@pytest.mark.parametrize("endpoint", ["tcp://my host:47615", "tcp://127.0.0.1:*",
                                      "ipc:///tmp/" + "x" * 200 + ".sock"])
def test_a_malformed_endpoint_is_a_sentence(endpoint: str) -> None:
    image = FakeImage()
    with pytest.raises(PluginError, match="the engine's address"):
        edit_selection(image, EditOptions("a green star", endpoint=endpoint, autostart=False))


@pytest.mark.parametrize("precision", ["half-linear", "float-non-linear"])
def test_nan_inside_the_selection_is_refused_before_sending(engine: EngineProcess,
                                                            precision: str) -> None:
    """A float layer with NaN or infinite values inside the selection: a sentence with how
    many, and nothing added; the same values outside the selection are ignored."""
    image = FakeImage(precision)
    oy, ox = image.offset[1], image.offset[0]
    image.layer[20 - oy, 30 - ox, 0] = np.nan
    image.layer[21 - oy, 30 - ox, 3] = np.inf
    with pytest.raises(PluginError, match=r"2 pixels inside the selection hold NaN"):
        edit_selection(image, _options(engine))
    assert image.added == []
    clean = FakeImage(precision)
    clean.layer[40 - oy, 10 - ox, 1] = np.nan  # outside the selection
    assert edit_selection(clean, _options(engine)).startswith("added 1 layer")


def test_which_variation_is_shown_and_kept() -> None:
    from wordbrush_core import variation_to_keep, variation_to_show

    assert variation_to_show([True, False, False]) == 1
    assert variation_to_show([False, False, True]) == 0  # round the group
    assert variation_to_show([False, True, False], step=-1) == 0
    assert variation_to_show([False, False]) == 0  # none shown: the first
    assert variation_to_keep([False, True]) == 1  # the one shown
    assert variation_to_keep([True, False], selected=1) == 1  # the one selected wins
    with pytest.raises(PluginError, match="no variation is shown"):
        variation_to_keep([False, False])
    with pytest.raises(PluginError, match="empty"):
        variation_to_show([])
