"""GUI GIMP 3 (in its chroot, on an Xvfb screen shared with it) running the Wordbrush
procedure interactively, driven from outside with xdotool: for what the NONINTERACTIVE
tests cannot reach (the dialog, its progress and preview, its Cancel) and for the
README's pictures (scripts/gimp_dialog_screenshot.py).

GIMP opens a scene with a selection, then runs the edit procedure INTERACTIVE once per
entry of ``runs`` (each a dict of the procedure's properties) and writes
``/<share>/done<N>.json`` (status, layers) after each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.gimp_chroot import gimp_command, mounted, prepare_share, why_no_gimp

REPO = Path(__file__).resolve().parents[2]

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
    for n, properties in enumerate({runs!r}):
        cfg = proc.create_config()
        cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
        cfg.set_property("image", image)
        cfg.set_core_object_array("drawables", [layer])
        cfg.set_property("endpoint", "ipc://" + S + "/sock/engine.sock")
        for key, value in properties.items():
            cfg.set_property(key, value)
        status = proc.run(cfg).index(0)
        Gimp.displays_flush()
        with open(S + "/done%d.json" % n, "w") as f:
            json.dump({{"status": status.value_nick,
                       "layers": [item.get_name() for item in image.get_layers()]}}, f)
''')

#: the dialog's buttons, from its bottom right corner (GIMP 3.0's procedure dialog)
BUTTONS = {"ok": (68, 42), "cancel": (164, 42)}


def why_no_gimp_gui() -> str | None:
    """Why GUI GIMP cannot be driven here (None: it can)."""
    if why := why_no_gimp(gui=True):
        return why
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed here; .ci/run installs xvfb and xdotool"
    return None


@dataclass
class GimpGui:
    """A running GUI GIMP and the share it works in."""

    share: Path
    display: str
    log: Path
    gimp: subprocess.Popen = field(repr=False)

    def xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], capture_output=True, text=True,
                              env={**os.environ, "DISPLAY": self.display}).stdout.strip()

    def window(self, name: str, timeout: float) -> str:
        """The newest visible window whose title matches ``name`` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.xdotool("search", "--onlyvisible", "--name", name).split()
            if found:
                return found[-1]
            if self.gimp.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"no window named {name!r} within {timeout:.0f} s; GIMP's log "
                             f"({self.log}):\n{self.log.read_text()[-3000:]}")

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        lines = self.xdotool("getwindowgeometry", "--shell", window).splitlines()
        geometry = dict(line.split("=", 1) for line in lines if "=" in line)
        return tuple(int(geometry.get(k, 0)) for k in ("X", "Y", "WIDTH", "HEIGHT"))

    def main_window(self) -> str:
        """GIMP's image window: the largest window whose title names GIMP."""
        self.window("GIMP", 30)
        found = self.xdotool("search", "--onlyvisible", "--name", "GIMP").split()
        return max(found, key=lambda w: self.geometry(w)[2] * self.geometry(w)[3])

    def press(self, dialog: str, button: str) -> None:
        """Click one of the dialog's buttons (``BUTTONS``), then move the pointer away."""
        x, y, w, h = self.geometry(dialog)
        dx, dy = BUTTONS[button]
        # GIMP's plug-in reads its events between engine polls: let each reach it
        self.xdotool("mousemove", str(x + w - dx), str(y + h - dy), "sleep", "0.4",
                     "mousedown", "1", "sleep", "0.3", "mouseup", "1", "sleep", "0.4")
        self.xdotool("mousemove", "1390", "890")  # off the canvas: no brush outline there

    def grab(self, window: str) -> Any:
        """The window's pixels (a PIL image), or None when it is gone."""
        from PIL import ImageGrab

        x, y, w, h = self.geometry(window)
        if w == 0 or h == 0:
            return None
        return ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=self.display)

    def done(self, n: int, timeout: float) -> dict:
        """What GIMP wrote after run ``n``: its status (a nick: success, cancel, ...) and
        the image's layers."""
        path = self.share / f"done{n}.json"
        deadline = time.monotonic() + timeout
        while not path.is_file() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert path.is_file(), f"run {n} did not end within {timeout:.0f} s; GIMP's log " \
                               f"({self.log}):\n{self.log.read_text()[-3000:]}"
        return json.loads(path.read_text())


def _free_display() -> str:
    """An X display number no server uses yet."""
    n = 77
    while Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
        n += 1
    return f":{n}"


@contextlib.contextmanager
def gimp_gui(runs: list[dict], scene_seed: int = 12, share_name: str = "wbgui"
             ) -> Iterator[GimpGui]:
    """GUI GIMP with the plug-in, an engine with the demo pack and a demo scene with one
    shape selected, running the edit procedure interactively for each of ``runs``."""
    from PIL import Image

    from engine.world import render_scene, selection_for
    from tests.support.engine import EngineProcess

    share, sudo = prepare_share(share_name)
    scene = render_scene(scene_seed, 384, 288, n_objects=2)
    _, mask = selection_for(scene, 0, "tight")
    Image.fromarray(scene.image).save(share / "scene.png")
    Image.fromarray(mask).save(share / "mask.png")
    (share / "batch.py").write_text(BATCH.format(share=share_name, runs=runs))
    display = _free_display()
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1400x900x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = EngineProcess(share / "sock", "--pack-dir", str(REPO / "packs"))
    log = Path(tempfile.mkdtemp(prefix="wb-gimp-gui-")) / "gimp.log"
    try:
        time.sleep(1.0)
        with mounted(sudo, binds=["/tmp/.X11-unix"]), open(log, "w") as log_file:
            gimp = subprocess.Popen(
                gimp_command(sudo, share_name, f'exec(open("/{share_name}/batch.py").read())',
                             gui=True, env={"DISPLAY": display}),
                stdout=log_file, stderr=subprocess.STDOUT)
            try:
                yield GimpGui(share, display, log, gimp)
            finally:  # this GIMP alone (its command line names this share), before unmounting
                subprocess.run([*sudo, "pkill", "-f", f"/{share_name}/batch.py"], check=False)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    gimp.wait(timeout=30)
    finally:
        engine.stop()
        xvfb.terminate()
