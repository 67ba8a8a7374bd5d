"""One undo step per edit in real Krita, variations included, and keeping one variation
is one more (GUI Krita under Xvfb: undo is a window action, which kritarunner has not)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.support.krita_gui import install_plugin, run_in_krita, why_no_gui_krita

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_one_undo_step_per_edit_and_per_kept_variation(tmp_path: Path) -> None:
    reason = why_no_gui_krita()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from engine.world import render_scene
    from tests.support.engine import EngineProcess

    home = tmp_path / "home"
    install_plugin(home)
    scene = render_scene(3, 192, 128, n_objects=2)
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    x0, y0, x1, y1 = scene.objects[0].bbox
    box = [int(x0) - 6, int(y0) - 6, int(x1 - x0) + 12, int(y1 - y0) + 12]
    engine = EngineProcess(tmp_path / "engine", "--pack-dir", str(REPO / "packs"))
    out = tmp_path / "result.json"
    try:
        stdout, stderr = run_in_krita(home, "krita_undo_scenario",
                                      [str(out), engine.endpoint, str(tmp_path / "scene.png"),
                                       *map(str, box)])
    finally:
        engine.stop()
    assert out.is_file(), f"Krita wrote nothing:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    r = json.loads(out.read_text())
    assert "exception" not in r, r["exception"]
    start = r["start"]
    name = "[wordbrush] a blue star"
    assert r["one"] == [*start, name]
    assert r["one_undone"] == start  # one Ctrl+Z: the whole result
    assert r["three"] == [*start, [name, [f"{name} #3", f"{name} #2", f"{name} #1"]]]
    assert r["three_undone"] == start  # the group and all three variations at once
    assert r["shown"] == [False, True, False]
    if any("did not make the variations' group the active layer" in m[0]
           for m in r["messages"]):
        # under Xvfb, with no window manager, Krita sometimes ignores setActiveNode (about
        # one run in three); the keep then refuses with a sentence and changes nothing
        assert r["kept"] == r["three"]
        pytest.xfail("Krita ignored setActiveNode under Xvfb; the keep changed nothing")
    assert r["kept"] == [*start, f"{name} #2"], r["messages"]
    assert r["kept_type"] == "paintlayer"
    assert r["kept_pixels_equal"]
    # keeping one is one step: undone, the three are back; one more, nothing of the edit
    assert r["keep_undone"] == [*start, [name, [f"{name} #3", f"{name} #2", f"{name} #1"]]]
    assert r["all_undone"] == start
    assert not [m for m in r["messages"] if m[1]], r["messages"]
