"""The Krita plugin in real Krita (Debian's krita 5.1.5, headless through kritarunner).

With a fresh HOME: install the plugin the way install.py does (vendored protocol, pyzmq and
msgpack for Krita's Python, enabled in kritarc), start a real engine with the demo pack,
then let Krita create a document with a two-object scene, select one object and run the
plugin's code path. Checked: one new layer above the source with the right name, pixels
outside the selection transparent in it, the original layer byte-identical, the selected
object recoloured as asked (the pack's judge reads the exported PNG), and a clean "engine
not running" path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "packs" / "demo" / "pack.json"

pytestmark = pytest.mark.slow


def _why_skip() -> str | None:
    if shutil.which("kritarunner") is None:
        return "Krita is not installed here (kritarunner not on PATH); .ci/run installs it"
    if not DEMO.is_file():
        return "the demo pack is not in packs/demo yet"
    return None


@pytest.fixture(scope="module")
def krita_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _why_skip()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("home")
    sys.path.insert(0, str(REPO))
    import install  # the installer's own functions, with a fresh HOME

    target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                  home / ".config/kritarc", install._system_python_version(),
                                  "manylinux2014_x86_64")
    install.install_krita(target)
    assert "enable_wordbrush=true" in target.kritarc.read_text()
    return home


def _run_scenario(krita_home: Path, out: Path, endpoint: str, scene: Path, mask: Path,
                  prompt: str, *which: str) -> dict:
    """``krita_scenario.run`` in real Krita (kritarunner); ``which``: method and pack."""
    pykrita = krita_home / ".local/share/krita/pykrita"
    # Krita's embedded Python finds its prefix through PATH: with this project's venv
    # activated it would pick the venv (which has no PyQt5) instead of the system's
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if not (sys.prefix != sys.base_prefix and p.startswith(sys.prefix)))
    env = dict(os.environ, PATH=path, HOME=str(krita_home), QT_QPA_PLATFORM="offscreen",
               XDG_DATA_HOME=str(krita_home / ".local/share"),
               XDG_CONFIG_HOME=str(krita_home / ".config"),
               PYTHONPATH=os.pathsep.join([str(pykrita), str(REPO / "tests" / "support")]))
    cmd = ["kritarunner", "-s", "krita_scenario", "-f", "run", str(out), endpoint, str(scene),
           str(mask), prompt, f"ipc://{out.parent}/nobody.sock", *which]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    result_file = out / "result.json"
    assert result_file.is_file(), f"kritarunner wrote nothing:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(result_file.read_text())


def _assert_one_new_layer(result: dict, prompt: str) -> None:
    """The edit ran and added one layer right above the source (Krita's new document has
    its own "Background" layer below), transparent outside the selection; the source's
    pixels are unchanged."""
    assert "exception" not in result, result.get("exception")
    assert result["connected"] and result["started"] and result["finished"], result
    assert result["layers_after"] == [*result["layers_before"], f"[wordbrush] {prompt}"], \
        result["messages"]
    assert result["new_above_source"] and result["original_unchanged"]
    assert result["outside_alpha_max"] == 0


def test_plugin_in_real_krita(krita_home: Path, tmp_path: Path) -> None:
    from engine.evaluation.edits import judge_read
    from engine.packs import PackRegistry
    from engine.world import BoxFraming, crop_frame, render_scene, selection_for
    from tests.support.engine import EngineProcess

    scene = render_scene(11, 256, 192, n_objects=2)
    index = 0
    box, mask = selection_for(scene, index, "tight")
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    old = scene.objects[index].attrs["color"]
    new_color = "blue" if old != "blue" else "yellow"
    prompt = f"a {new_color} {scene.objects[index].attrs['shape']}"

    engine = EngineProcess(tmp_path / "engine")
    out = tmp_path / "out"
    try:
        result = _run_scenario(krita_home, out, engine.endpoint, tmp_path / "scene.png",
                               tmp_path / "mask.png", prompt)
    finally:
        engine.stop()
    _assert_one_new_layer(result, prompt)
    after = np.asarray(Image.open(out / "after.png").convert("RGB"))
    judge = PackRegistry([REPO / "packs"]).get("demo").get("judge")
    rect = BoxFraming().fit(box).frame_rect()
    read = judge_read(judge, [crop_frame(after, rect, 64)])[0]
    assert read["color"] == new_color, f"the judge reads {read} after {prompt!r}"
    outside = mask == 0
    assert np.array_equal(after[outside], scene.image[outside])
    # the engine is not running
    assert result["dead_connect"] is False and result["dead_run"] is False
    assert result["dead_states"][-1][0] == "unreachable"
    assert result["dead_layers_unchanged"]


def test_plugin_edits_a_face_in_real_krita(krita_home: Path, tmp_path: Path) -> None:
    """A face pack (ffhq framing): the face in a photo is found, aligned, edited and pasted
    back as one new layer above the source; nothing else in the document changes."""
    pytest.importorskip("skimage", reason="scikit-image (a test dependency) ships the photo")
    from tests.support.engine import EngineProcess
    from tests.support.faces import face_photo, make_face_pack

    photo_png, mask_png, photo, mask = face_photo(tmp_path)
    make_face_pack(tmp_path / "packs")
    prompt = "a face with blonde hair"
    engine = EngineProcess(tmp_path / "engine", "--pack-dir", str(tmp_path / "packs"))
    try:
        result = _run_scenario(krita_home, tmp_path / "out", engine.endpoint, photo_png,
                               mask_png, prompt, "clipinverter", "faces")
    finally:
        engine.stop()
    _assert_one_new_layer(result, prompt)
    after = np.asarray(Image.open(tmp_path / "out" / "after.png").convert("RGB"))
    assert np.array_equal(after[mask == 0], photo[mask == 0])
    assert not np.array_equal(after[mask == 255], photo[mask == 255])
