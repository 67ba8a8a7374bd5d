"""Regenerate docs/krita_docker.png: the Wordbrush docker in GUI Krita under Xvfb.

    .venv/bin/python scripts/krita_docker_screenshot.py      # needs krita, xvfb-run

A fresh HOME gets the plugin (as install.py installs it) and a one-off helper plugin that,
once Krita's window exists, opens a document with a demo scene, shows the docker, waits
for it to connect to a running engine, grabs the docker to a PNG and quits.
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
    from krita import Extension, Krita
    from PyQt5.QtCore import QTimer
    from PyQt5.QtGui import QImage
    from PyQt5.QtWidgets import QDockWidget

    OUT = {out!r}
    SCENE = {scene!r}

    class Shot(Extension):
        def setup(self):
            Krita.instance().notifier().windowCreated.connect(self.start)

        def createActions(self, window):
            pass

        def start(self):
            app = Krita.instance()
            doc = app.openDocument(SCENE)
            app.activeWindow().addView(doc)
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
                    d.prompt.setText("a blue star")
            QTimer.singleShot(4000, self.grab)

        def grab(self):
            d = self.docker()
            if d is not None:
                d.grab().save(OUT)
            doc = Krita.instance().activeDocument()
            if doc is not None:
                doc.setModified(False)
            Krita.instance().action("file_quit").trigger()

    Krita.instance().addExtension(Shot(Krita.instance()))
''')


def main() -> int:
    from PIL import Image

    import install
    from engine.world import render_scene

    out = ROOT / "docs" / "krita_docker.png"
    with tempfile.TemporaryDirectory(prefix="wb-krita-shot-") as tmp:
        home = Path(tmp)
        target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                      home / ".config/kritarc",
                                      install._system_python_version(), "manylinux2014_x86_64")
        install.install_krita(target)
        pykrita = target.pykrita
        scene = home / "scene.png"
        Image.fromarray(render_scene(3, 384, 256, n_objects=3).image).save(scene)
        (pykrita / "wb_shot.desktop").write_text(
            "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
            "X-KDE-Library=wb_shot\nX-Python-2-Compatible=false\nName=wb shot\n")
        (pykrita / "wb_shot").mkdir()
        (pykrita / "wb_shot" / "__init__.py").write_text(
            HELPER.format(out=str(out), scene=str(scene)))
        with open(target.kritarc, "a", encoding="utf-8") as f:
            f.write("enable_wb_shot=true\n")
        env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"),
                   XDG_CONFIG_HOME=str(home / ".config"))
        # the committed picture is there already: only a newer one is this run's
        before = out.stat().st_mtime_ns if out.is_file() else None
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
        if not out.is_file() or out.stat().st_mtime_ns == before:
            print(stdout[-2000:], stderr[-2000:])
            return 1
    print(json.dumps({"wrote": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
