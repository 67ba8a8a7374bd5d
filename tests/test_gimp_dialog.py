"""The edit's dialog in real GUI GIMP 3 (tests/support/gimp_gui.py: GIMP in its chroot on
an Xvfb screen, clicked with xdotool): it stays open while the edit runs and shows the
method's preview; its Cancel stops the edit and nothing is added; run again, OK makes the
new layer and the dialog goes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support.gimp_gui import gimp_gui, why_no_gimp_gui

pytestmark = pytest.mark.slow

SLOW = {"prompt": "a blue star", "method": "paint-by-word", "pack": "demo", "seed": 3,
        "params": "steps=400 preview_every=2"}  # cancelled long before its end
QUICK = {**SLOW, "params": "steps=5"}


def test_the_dialog_shows_the_edit_and_its_cancel_adds_nothing() -> None:
    if why := why_no_gimp_gui():
        print(f"SKIP: {why}")
        pytest.skip(why)
    with gimp_gui([SLOW, QUICK]) as gui:
        dialog = gui.window("^Wordbrush$", 240)
        time.sleep(1.5)  # drawn
        before = np.asarray(gui.grab(dialog))
        gui.press(dialog, "ok")
        # the dialog stays, and grows a preview and a progress bar as the edit runs
        deadline = time.monotonic() + 60
        grown = False
        while time.monotonic() < deadline and not grown:
            shot = gui.grab(dialog)
            assert shot is not None, "the dialog closed while the edit ran"
            grown = shot.size[1] > before.shape[0] + 100
            time.sleep(0.3)
        assert grown, "the dialog did not open its preview and progress bar"
        # the method's preview fills the picture above the bar (the first edit loads the
        # pack first); the bar is 150 px above the dialog's bottom, the picture 192 px tall
        deadline = time.monotonic() + 60
        shown = 0.0
        while time.monotonic() < deadline and shown <= 5:
            shot = np.asarray(gui.grab(dialog))
            h, w = shot.shape[:2]
            shown = float(shot[h - 320:h - 170, w // 2 - 80:w // 2 + 80].std())
            time.sleep(0.3)
        assert shown > 5, "the dialog's preview stayed blank"
        gui.press(dialog, "cancel")
        first = gui.done(0, 60)
        assert first["status"] == "cancel", first  # the artist's Cancel is no error
        assert first["layers"] == ["Background"]  # nothing added
        dialog = gui.window("^Wordbrush$", 60)  # the second run's dialog
        time.sleep(1.5)
        gui.press(dialog, "ok")
        second = gui.done(1, 120)
        assert second["status"] == "success", second
        assert second["layers"] == ["[wordbrush] a blue star", "Background"]
