"""Regenerate docs/gimp_dialog.png (the Wordbrush dialog in real GIMP 3 while an edit runs:
its fields greyed, the method's preview and the progress bar) and docs/gimp_window.png
(GIMP's window after the edit: the image and the new layer in the Layers dock).

    .venv/bin/python scripts/gimp_dialog_screenshot.py
        # needs the GIMP chroot (.ci/gimp-chroot.sh), root or passwordless sudo, Xvfb, xdotool

GUI GIMP (tests/support/gimp_gui.py: the plug-in installed as install.py installs it, an
engine with the demo pack) opens a demo scene with one shape selected and runs Filters >
Wordbrush > Edit Selection from Text… with a prompt filled in; this script presses OK,
grabs the dialog as the edit runs, waits for it and grabs GIMP's window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN = {"prompt": "a blue star", "method": "paint-by-word", "pack": "demo", "seed": 3,
       "params": "steps=100 preview_every=3"}


def main() -> int:
    from tests.support.gimp_gui import gimp_gui, why_no_gimp_gui

    if why := why_no_gimp_gui():
        raise SystemExit(why)
    with gimp_gui([RUN], share_name="wbshot") as gui:
        dialog = gui.window("^Wordbrush$", 180)
        main_window = gui.main_window()
        gui.xdotool("windowsize", main_window, "1280", "800")
        gui.xdotool("windowmove", main_window, "0", "0")
        gui.xdotool("windowraise", dialog)
        time.sleep(1.5)  # drawn
        gui.press(dialog, "ok")
        # grab it as the edit runs, until it closes; keep one from two thirds in (the
        # edit's own previews are in, the bar is moving)
        shots = []
        while (shot := gui.grab(dialog)) is not None:
            shots.append(shot)
            time.sleep(0.4)
        if not shots:
            raise SystemExit("the dialog closed before it could be grabbed")
        out = ROOT / "docs" / "gimp_dialog.png"
        shots[len(shots) * 2 // 3].save(out)
        print(f"wrote {out} (one of {len(shots)} grabs)")
        print(f"the edit: {gui.done(0, 180)}")
        time.sleep(2.0)  # the new layer drawn
        out = ROOT / "docs" / "gimp_window.png"
        gui.grab(main_window).save(out)
        print(f"wrote {out}; GIMP's log: {gui.log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
