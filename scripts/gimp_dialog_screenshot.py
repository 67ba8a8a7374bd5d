"""Regenerate docs/gimp_dialog.png (the Wordbrush dialog in real GIMP 3 while an edit runs:
its fields greyed, the method's preview and the progress bar) and docs/gimp_window.png
(GIMP's window after the edit: the image and the new layer in the Layers dock).

    .venv/bin/python scripts/gimp_dialog_screenshot.py
        # needs the GIMP chroot (.ci/gimp-chroot.sh), root or passwordless sudo, Xvfb, xdotool

An Xvfb screen is shared with the chroot; a fresh GIMP profile gets the plug-in (as
install.py installs it); an engine with the demo pack listens on a socket GIMP can see.
GUI GIMP opens a demo scene with one shape selected and runs Filters > Wordbrush > Edit
Selection from Text… interactively with a prompt filled in; this script presses OK, grabs
the dialog once the first preview is in, waits for the edit and grabs GIMP's window.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISPLAY = ":77"
SHARE = "wbshot"  # /wbshot inside the chroot
PROMPT = "a blue star"

BATCH = textwrap.dedent('''
    import json
    import gi
    gi.require_version("Gimp", "3.0")
    gi.require_version("Gegl", "0.4")
    from gi.repository import Gegl, Gimp, Gio

    S = "/{share}"
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(S + "/scene.png"))
    layer = image.get_layers()[0]
    mask = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(S + "/mask.png"))
    w, h = image.get_width(), image.get_height()
    rect = Gegl.Rectangle.new(0, 0, w, h)
    data = mask.get_layers()[0].get_buffer().get(rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
    buf = image.get_selection().get_buffer()
    buf.set(rect, "Y u8", data)
    buf.flush()
    image.get_selection().update(0, 0, w, h)
    Gimp.Display.new(image)
    Gimp.displays_flush()
    proc = Gimp.get_pdb().lookup_procedure("plug-in-wordbrush-edit-selection")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    cfg.set_property("prompt", {prompt!r})
    cfg.set_property("method", "paint-by-word")
    cfg.set_property("pack", "demo")
    cfg.set_property("seed", 3)
    cfg.set_property("endpoint", "ipc://" + S + "/sock/engine.sock")
    cfg.set_property("params", "steps=100 preview_every=3")
    status = proc.run(cfg).index(0)
    Gimp.displays_flush()
    with open(S + "/done.json", "w") as f:
        json.dump({{"status": str(status),
                   "layers": [item.get_name() for item in image.get_layers()]}}, f)
''')


def _xdotool(*args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True,
                          env={**os.environ, "DISPLAY": DISPLAY}).stdout.strip()


def _window(name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _xdotool("search", "--onlyvisible", "--name", name).split()
        if found:
            return found[-1]
        time.sleep(0.3)
    raise SystemExit(f"no window named {name!r} appeared within {timeout:.0f} s")


def _main_window() -> str:
    """GIMP's image window: the largest window whose title names GIMP."""
    _window("GIMP", 10)
    found = _xdotool("search", "--onlyvisible", "--name", "GIMP").split()
    return max(found, key=lambda w: _geometry(w)[2] * _geometry(w)[3])


def _geometry(window: str) -> tuple[int, int, int, int]:
    geometry = dict(line.split("=") for line in
                    _xdotool("getwindowgeometry", "--shell", window).splitlines())
    x, y, w, h = (int(geometry.get(k, 0)) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return x, y, w, h


def _grab(window: str) -> Any:
    """The window's pixels (a PIL image), or None when it is gone."""
    from PIL import ImageGrab

    x, y, w, h = _geometry(window)
    if w == 0 or h == 0:
        return None
    return ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=DISPLAY)


def main() -> int:
    from PIL import Image

    from engine.world import render_scene, selection_for
    from tests.support.engine import EngineProcess
    from tests.support.gimp_chroot import gimp_command, mounted, prepare_share, why_no_gimp

    if why := why_no_gimp(gui=True):
        raise SystemExit(why)
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt install xvfb xdotool)")
    share, sudo = prepare_share(SHARE)
    scene = render_scene(12, 384, 288, n_objects=2)
    _, mask = selection_for(scene, 0, "tight")
    Image.fromarray(scene.image).save(share / "scene.png")
    Image.fromarray(mask).save(share / "mask.png")
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1400x900x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = EngineProcess(share / "sock", "--pack-dir", str(ROOT / "packs"))
    log = Path(tempfile.mkdtemp()) / "gimp.log"
    gimp = None
    try:
        time.sleep(1.0)
        with mounted(sudo, binds=["/tmp/.X11-unix"]), open(log, "w") as log_file:
            batch = BATCH.format(share=SHARE, prompt=PROMPT)
            (share / "batch.py").write_text(batch)
            gimp = subprocess.Popen(
                gimp_command(sudo, SHARE, f'exec(open("/{SHARE}/batch.py").read())',
                             gui=True, env={"DISPLAY": DISPLAY}),
                stdout=log_file, stderr=subprocess.STDOUT)
            dialog = _window("^Wordbrush$", 180)
            main_window = _main_window()
            _xdotool("windowsize", main_window, "1280", "800")
            _xdotool("windowmove", main_window, "0", "0")
            _xdotool("windowraise", dialog)
            time.sleep(1.5)  # drawn
            geometry = _geometry(dialog)
            # OK, the dialog's last button (bottom right)
            _xdotool("mousemove", str(geometry[0] + geometry[2] - 55),
                     str(geometry[1] + geometry[3] - 42), "click", "1")
            _xdotool("mousemove", "1390", "890")  # off the canvas: no brush outline there
            # grab it as the edit runs, until it closes; keep one from two thirds in (the
            # edit's own previews are in, the bar is moving)
            shots = []
            while True:
                shot = _grab(dialog)
                if shot is None:
                    break
                shots.append(shot)
                time.sleep(0.4)
            if not shots:
                raise SystemExit("the dialog closed before it could be grabbed")
            out = ROOT / "docs" / "gimp_dialog.png"
            shots[len(shots) * 2 // 3].save(out)
            print(f"wrote {out} (one of {len(shots)} grabs)")
            deadline = time.monotonic() + 180
            while not (share / "done.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
            done = json.loads((share / "done.json").read_text())
            print(f"the edit: {done}")
            time.sleep(2.0)  # the new layer drawn
            out = ROOT / "docs" / "gimp_window.png"
            _grab(main_window).save(out)
            print(f"wrote {out}")
    finally:
        if gimp is not None:
            subprocess.run([*sudo, "pkill", "-f", "gimp-3.0"], check=False)
            gimp.wait(timeout=30)
        engine.stop()
        xvfb.terminate()
        print(f"GIMP's log: {log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
