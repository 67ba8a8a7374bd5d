"""Regenerate docs/krita_docker.png (the Wordbrush docker with a live preview) and
docs/krita_window.png (the whole window after the edit: canvas, selection, docker and the new
layer in the layer stack), in GUI Krita under Xvfb.

    .venv/bin/python scripts/krita_docker_screenshot.py      # needs krita, xvfb-run

A fresh HOME gets the plugin (as install.py installs it); GUI Krita then runs
``scripts/krita/krita_shot_scenario.py`` through the test helper (tests/support/krita_gui.py):
it opens a document with a demo scene, selects one shape, types a prompt in the docker,
waits for the live preview, grabs the docker, presses Run, waits for the new layer, grabs
the window and quits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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

    from engine.world import render_scene
    from tests.support.krita_gui import install_plugin, run_in_krita

    out = ROOT / "docs" / "krita_docker.png"
    window = ROOT / "docs" / "krita_window.png"
    with tempfile.TemporaryDirectory(prefix="wb-krita-shot-") as tmp:
        home = Path(tmp)
        install_plugin(home)
        scene = home / "scene.png"
        drawn = render_scene(3, 384, 256, n_objects=3)
        Image.fromarray(drawn.image).save(scene)
        x0, y0, x1, y1 = drawn.objects[0].bbox  # the orange star, with a margin
        box = (int(x0) - 8, int(y0) - 8, int(x1 - x0) + 16, int(y1 - y0) + 16)
        # an engine of its own, never the artist's (stopped below)
        endpoint = f"ipc://{home}/engine.sock"
        # the committed picture is there already: only a newer one is this run's
        before = window.stat().st_mtime_ns if window.is_file() else None
        try:
            stdout, stderr = run_in_krita(
                home, "krita_shot_scenario", [str(out), str(window), str(scene), *map(str, box)],
                env={"WORDBRUSH_ENDPOINT": endpoint}, module_dir=ROOT / "scripts" / "krita")
        finally:
            _stop_engines(endpoint)
        if not window.is_file() or window.stat().st_mtime_ns == before:
            print(stdout[-2000:], stderr[-2000:])
            return 1
    print(json.dumps({"wrote": [str(out), str(window)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
