"""Inside GUI Krita (tests/test_krita_undo.py): edits through the plugin's controller and a
real engine, then Edit > Undo (the window's action, what Ctrl+Z triggers), counting what
one undo step takes away.

``run([out, endpoint, scene, x, y, w, h], QTimer, quit)`` writes ``out`` (JSON).
"""

from __future__ import annotations

import json
import time
import traceback

from krita import Krita, Selection  # type: ignore[import-not-found]
from wordbrush.controller import Controller, RunOptions  # type: ignore[import-not-found]
from wordbrush.settings import Settings  # type: ignore[import-not-found]


class Recorder:
    def __init__(self) -> None:
        self.messages: list[list] = []
        self.variations: list[list] = []

    def on_status(self, state, text): pass
    def on_offer(self, welcome): pass
    def on_busy(self, busy): pass
    def on_progress(self, fraction, text): pass
    def on_preview(self, w, h, data): pass
    def on_live_preview(self, w, h, data, text): pass

    def on_message(self, text, error):
        self.messages.append([text, bool(error)])

    def on_variations(self, shown, count):
        self.variations.append([shown, count])


def _tree(doc) -> list:
    def node(n):
        if n.type() == "grouplayer":
            return [n.name(), [node(c) for c in n.childNodes()]]
        return n.name()
    return [node(n) for n in doc.topLevelNodes() if n.type() != "selectionmask"]


def run(args: list[str], _timer, quit) -> None:
    out, endpoint, scene = args[:3]
    box = [int(v) for v in args[3:7]]
    result: dict = {}
    try:
        app = Krita.instance()
        doc = app.openDocument(scene)
        app.activeWindow().addView(doc)
        doc.waitForDone()
        selection = Selection()
        selection.select(*box, 255)
        doc.setSelection(selection)
        rec = Recorder()
        ctl = Controller(rec, Settings(endpoint=endpoint, autostart=False, timeout_s=120))
        result["connected"] = ctl.connect(start=False)

        def edit(variations: int) -> None:
            assert ctl.run(doc, RunOptions("a blue star", method="paint-by-word", pack="demo",
                                           variations=variations, seed=7,
                                           params={"steps": 3})), rec.messages
            deadline = time.monotonic() + 180
            while ctl.job is not None and time.monotonic() < deadline:
                ctl.pump()
                ctl.tick()
                time.sleep(0.02)
            doc.waitForDone()

        def undo() -> None:
            app.action("edit_undo").trigger()
            doc.waitForDone()

        result["start"] = _tree(doc)
        edit(1)
        result["one"] = _tree(doc)
        undo()
        result["one_undone"] = _tree(doc)
        edit(3)
        result["three"] = _tree(doc)
        undo()
        result["three_undone"] = _tree(doc)
        edit(3)
        group = next(n for n in doc.topLevelNodes() if n.type() == "grouplayer")
        second = list(reversed(group.childNodes()))[1]
        w, h = doc.width(), doc.height()
        second_pixels = bytes(second.pixelData(0, 0, w, h))
        ctl.step_variation(1)
        result["shown"] = [c.visible() for c in reversed(group.childNodes())]
        ctl.keep_variation()
        result["kept"] = _tree(doc)
        kept = next(n for n in doc.topLevelNodes() if n.name().startswith("[wordbrush]"))
        result["kept_type"] = kept.type()
        result["kept_pixels_equal"] = bytes(kept.pixelData(0, 0, w, h)) == second_pixels
        undo()
        result["keep_undone"] = _tree(doc)
        undo()
        result["all_undone"] = _tree(doc)
        result["messages"] = rec.messages
        result["variations"] = rec.variations
        ctl.shutdown()
    except Exception:
        result["exception"] = traceback.format_exc()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    quit()
