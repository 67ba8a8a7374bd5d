"""Regenerate docs/krita_docker.png (the Wordbrush docker with a live preview) and
docs/krita_window.png (the whole window after the edit: canvas, selection, docker and the new
layer in the layer stack), in GUI Krita under Xvfb.

    .venv/bin/python scripts/krita_docker_screenshot.py      # needs krita, xvfb-run

A fresh HOME gets the plugin (as install.py installs it) and a one-off helper plugin that,
once Krita's window exists, opens a document with a demo scene, selects one shape, types a
prompt in the docker, waits for the live preview, grabs the docker, presses Run, waits for
the new layer, grabs the window and quits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELPER = textwrap.dedent('''
    from krita import Extension, Krita, Selection
    from PyQt5.QtCore import QTimer

    OUT = {out!r}
    WINDOW = {window!r}
    SCENE = {scene!r}
    BOX = {box!r}

    class Shot(Extension):
        def setup(self):
            Krita.instance().notifier().windowCreated.connect(self.start)

        def createActions(self, window):
            pass

        def start(self):
            app = Krita.instance()
            doc = app.openDocument(SCENE)
            app.activeWindow().addView(doc)
            selection = Selection()
            selection.select(*BOX, 255)
            doc.setSelection(selection)
            QTimer.singleShot(4000, self.prompt)

        def docker(self):
            for d in Krita.instance().dockers():
                if d.objectName() == "wordbrush":
                    return d
            return None

        def prompt(self):
            d = self.docker()
            if d is not None:
                d.show()
                d.raise_()
                if hasattr(d, "prompt"):
                    d.prompt.setText("a blue star")  # the live preview follows the pause
            QTimer.singleShot(6000, self.grab_docker)

        def grab_docker(self):
            d = self.docker()
            if d is not None:
                d.grab().save(OUT)
                d._run()  # the layer, as Enter makes it
            self.waited = 0
            QTimer.singleShot(1000, self.grab_window)

        def grab_window(self):
            d = self.docker()
            self.waited += 1
            if d is not None and d.controller.job is not None and self.waited < 120:
                QTimer.singleShot(1000, self.grab_window)
                return
            QTimer.singleShot(1000, self.finish)

        def finish(self):
            window = Krita.instance().activeWindow()
            if window is not None:
                window.qwindow().grab().save(WINDOW)
            doc = Krita.instance().activeDocument()
            if doc is not None:
                doc.setModified(False)
            Krita.instance().action("file_quit").trigger()

    Krita.instance().addExtension(Shot(Krita.instance()))
''')


def _stop_engines(endpoint: str) -> None:
    """Stop the engine the docker started for ``endpoint`` (detached: it outlives Krita)."""
    wanted = f"WORDBRUSH_ENDPOINT={endpoint}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGTERM)
        except (OSError, ProcessLookupError):
            continue


def main() -> int:
    from PIL import Image

    import install
    from engine.world import render_scene

    out = ROOT / "docs" / "krita_docker.png"
    window = ROOT / "docs" / "krita_window.png"
    with tempfile.TemporaryDirectory(prefix="wb-krita-shot-") as tmp:
        home = Path(tmp)
        target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                      home / ".config/kritarc",
                                      install._system_python_version(), "manylinux2014_x86_64")
        install.install_krita(target)
        pykrita = target.pykrita
        scene = home / "scene.png"
        drawn = render_scene(3, 384, 256, n_objects=3)
        Image.fromarray(drawn.image).save(scene)
        x0, y0, x1, y1 = drawn.objects[0].bbox  # the orange star, with a margin
        box = (int(x0) - 8, int(y0) - 8, int(x1 - x0) + 16, int(y1 - y0) + 16)
        (pykrita / "wb_shot.desktop").write_text(
            "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
            "X-KDE-Library=wb_shot\nX-Python-2-Compatible=false\nName=wb shot\n")
        (pykrita / "wb_shot").mkdir()
        (pykrita / "wb_shot" / "__init__.py").write_text(
            HELPER.format(out=str(out), window=str(window), scene=str(scene), box=box))
        with open(target.kritarc, "a", encoding="utf-8") as f:
            f.write("enable_wb_shot=true\n")
        # an engine of its own, never the artist's (stopped below)
        endpoint = f"ipc://{home}/engine.sock"
        env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"),
                   XDG_CONFIG_HOME=str(home / ".config"), WORDBRUSH_ENDPOINT=endpoint)
        # the committed picture is there already: only a newer one is this run's
        before = window.stat().st_mtime_ns if window.is_file() else None
        # its own session, so that a timeout stops Krita and Xvfb too, not only xvfb-run
        proc = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita",
                                 "--nosplash"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            print("Krita did not write the screenshot within 300 s; stopped it")
        finally:
            _stop_engines(endpoint)
        if not window.is_file() or window.stat().st_mtime_ns == before:
            print(stdout[-2000:], stderr[-2000:])
            return 1
    print(json.dumps({"wrote": [str(out), str(window)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
