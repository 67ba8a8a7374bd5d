"""Runs inside real Krita (``kritarunner -s krita_scenario -f run ...``).

Creates a document from a scene PNG, selects with a mask PNG, drives the plugin's own
code path (Controller + KritaDocument) against a real engine, and writes what happened to
``OUT/result.json`` plus the exported image ``OUT/after.png``. A second run against an
endpoint where nothing listens checks the "engine not running" path.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path


def _rows(image, bpp: int) -> bytes:  # QImage -> tightly packed rows
    ptr = image.constBits()
    ptr.setsize(image.byteCount())
    data = bytes(ptr)
    stride, w = image.bytesPerLine(), image.width()
    return b"".join(data[y * stride:y * stride + w * bpp] for y in range(image.height()))


class Recorder:
    def __init__(self) -> None:
        self.states, self.messages, self.progress = [], [], 0

    def on_status(self, state, text):
        self.states.append([state.value, text])

    def on_offer(self, welcome):
        pass

    def on_busy(self, busy):
        pass

    def on_progress(self, fraction, text):
        self.progress += 1

    def on_preview(self, w, h, data):
        pass

    def on_message(self, text, error):
        self.messages.append([text, bool(error)])

    def on_live_preview(self, w, h, data, text):
        pass

    def on_variations(self, shown, count):
        pass


def _layers(doc) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes() if n.type() != "selectionmask"]


def run(args: list[str]) -> None:
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    try:
        _scenario(args, out, result)
    except Exception:
        result["exception"] = traceback.format_exc()
    (out / "result.json").write_text(json.dumps(result, indent=2))


def _scenario(args: list[str], out: Path, result: dict) -> None:
    endpoint, scene_png, mask_png, prompt, dead_endpoint = args[1:6]
    # optional: the method and pack (default paint-by-word on the demo pack)
    method, pack = (args[6:8] + ["paint-by-word", "demo"][len(args[6:8]):])[:2]
    import wordbrush  # noqa: F401 - the plugin package, as Krita loads it (vendor path)
    from krita import InfoObject, Krita, Selection  # type: ignore[import-not-found]
    from PyQt5.QtCore import QCoreApplication, QEventLoop  # type: ignore[import-not-found]
    from PyQt5.QtGui import QImage  # type: ignore[import-not-found]
    from wordbrush.controller import Controller, RunOptions
    from wordbrush.settings import Settings

    scene = QImage(scene_png).convertToFormat(QImage.Format_ARGB32)  # BGRA in memory
    mask = QImage(mask_png).convertToFormat(QImage.Format_Grayscale8)
    w, h = scene.width(), scene.height()
    app = Krita.instance()
    doc = app.createDocument(w, h, "scene", "RGBA", "U8", "", 72.0)
    doc.setBatchmode(True)
    root = doc.rootNode()
    layer = doc.createNode("scene", "paintlayer")
    root.addChildNode(layer, None)
    layer.setPixelData(_rows(scene, 4), 0, 0, w, h)
    selection = Selection()
    selection.setPixelData(_rows(mask, 1), 0, 0, w, h)
    doc.setSelection(selection)
    doc.refreshProjection()
    before = bytes(layer.pixelData(0, 0, w, h))
    result["layers_before"] = _layers(doc)

    rec = Recorder()
    ctl = Controller(rec, Settings(endpoint=endpoint, autostart=False, timeout_s=60))
    result["connected"] = ctl.connect()
    started = ctl.run(doc, RunOptions(prompt, method=method, pack=pack, seed=1), node=layer)
    result["started"] = started
    loop = QEventLoop()
    deadline = time.monotonic() + 240
    while ctl.job is not None and time.monotonic() < deadline:
        ctl.pump()
        ctl.tick()
        loop.processEvents(QEventLoop.AllEvents, 50)
        QCoreApplication.processEvents()
        time.sleep(0.02)
    result["finished"] = ctl.job is None
    result["messages"] = rec.messages
    result["states"] = rec.states
    result["layers_after"] = _layers(doc)
    nodes = [n for n in root.childNodes() if n.type() != "selectionmask"]
    result["original_unchanged"] = bytes(layer.pixelData(0, 0, w, h)) == before
    new = [n for n in nodes if n.name().startswith("[wordbrush]")]
    if new:
        pixels = bytes(new[0].pixelData(0, 0, w, h))
        sel = _rows(mask, 1)
        result["outside_alpha_max"] = max(
            (pixels[i * 4 + 3] for i in range(w * h) if sel[i] == 0), default=0)
        result["new_above_source"] = nodes.index(new[0]) == nodes.index(layer) + 1
    doc.setSelection(Selection())  # export the image, not a selection mask
    info = InfoObject()
    doc.exportImage(str(out / "after.png"), info)
    ctl.shutdown()

    # the engine is not running: a clear status, no new layer, no exception
    rec2 = Recorder()
    dead = Controller(rec2, Settings(endpoint=dead_endpoint, autostart=False))
    layers = _layers(doc)
    result["dead_connect"] = dead.connect()
    result["dead_run"] = dead.run(doc, RunOptions(prompt, pack=pack), node=layer)
    result["dead_states"] = rec2.states
    result["dead_messages"] = rec2.messages
    result["dead_layers_unchanged"] = _layers(doc) == layers
    doc.setModified(False)
    doc.close()
