"""The GIMP plug-in in real GIMP 3 (Debian trixie in a chroot, built by .ci/gimp-chroot.sh,
which .ci/run calls when the chroot is absent).

install.py's functions put the plug-in (with pyzmq and msgpack for Python 3.13) into an
isolated GIMP profile inside the chroot; a real engine with the demo pack listens on an
ipc socket the chroot can see; GIMP runs the procedure NONINTERACTIVE on a two-object
scene with one object selected. Checked: one new layer above the source with the right
name, transparent outside the selection, the source unchanged, the object recoloured as
asked (the pack's judge reads the flattened PNG), an error status with the plug-in's message
(not a crash, no layer) when the engine is not running, and on a 16-bit copy, two
variations as one layer group above the source, which stays unchanged; Show Next Variation
shows the second alone and Keep Shown Variation puts it in the group's place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.gimp_chroot import gimp_command, mounted, prepare_share, why_no_gimp

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run_in_gimp(share: Path, sudo: list[str], args: dict, endpoint_folder: Path,
                 *engine_args: str) -> tuple[dict, str]:
    """The scenario in the GIMP chroot with an engine listening in ``endpoint_folder``."""
    from tests.support.engine import EngineProcess

    # the engine listens inside the chroot's tree: ipc:///wb/sock/engine.sock from inside
    engine = EngineProcess(endpoint_folder, *engine_args)
    (share / "args.json").write_text(json.dumps(args))
    shutil.copy(REPO / "tests" / "support" / "gimp_scenario.py", share / "scenario.py")
    (share / "result.json").unlink(missing_ok=True)
    try:
        with mounted(sudo):
            proc = subprocess.run(gimp_command(sudo, "wb", 'exec(open("/wb/scenario.py").read())'),
                                  capture_output=True, text=True, timeout=600)
    finally:
        engine.stop()
    result_file = share / "result.json"
    log = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert result_file.is_file(), f"GIMP wrote nothing:\n{log}"
    return json.loads(result_file.read_text()), log


def _prepare(tmp_path: Path) -> tuple[Path, list[str]]:
    """The shared folder (``/wb`` inside the chroot) with the plug-in installed."""
    reason = why_no_gimp()
    if reason is None and not (REPO / "packs" / "demo" / "pack.json").is_file():
        reason = "the demo pack is not in packs/demo yet"
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return prepare_share("wb")


def test_plugin_edits_a_face_in_real_gimp(tmp_path: Path) -> None:
    """A face pack (ffhq framing): the face in a photo comes back as one new layer above
    the source, nothing else in the image changes."""
    pytest.importorskip("skimage", reason="scikit-image (a test dependency) ships the photo")
    share, sudo = _prepare(tmp_path)
    from tests.support.faces import face_photo, make_face_pack

    face_photo(share)
    make_face_pack(share / "packs")
    prompt = "a face with blonde hair"
    result, log = _run_in_gimp(share, sudo, {
        "scene": "/wb/photo.png", "mask": "/wb/photo-mask.png", "prompt": prompt,
        "endpoint": "ipc:///wb/sock/engine.sock", "dead_endpoint": "ipc:///wb/sock/no.sock",
        "method": "clipinverter", "pack": "faces", "first_only": True},
        share / "sock", "--pack-dir", str(share / "packs"))
    assert "exception" not in result, result.get("exception")
    assert result["run"]["success"], (result, log)
    assert result["layers"][0] == f"[wordbrush] {prompt}" and len(result["layers"]) == 2
    assert result["new_above_source"] and result["original_unchanged"]
    assert result["outside_alpha_nonzero"] == 0


def test_plugin_in_real_gimp(tmp_path: Path) -> None:
    share, sudo = _prepare(tmp_path)
    from engine.evaluation.edits import judge_read
    from engine.packs import PackRegistry
    from engine.world import BoxFraming, crop_frame, render_scene, selection_for

    scene = render_scene(11, 256, 192, n_objects=2)
    box, mask = selection_for(scene, 0, "tight")
    Image.fromarray(scene.image).save(share / "scene.png")
    Image.fromarray(mask).save(share / "mask.png")
    old = scene.objects[0].attrs["color"]
    new_color = "blue" if old != "blue" else "yellow"
    prompt = f"a {new_color} {scene.objects[0].attrs['shape']}"
    result, _ = _run_in_gimp(share, sudo, {
        "scene": "/wb/scene.png", "mask": "/wb/mask.png", "prompt": prompt,
        "endpoint": "ipc:///wb/sock/engine.sock",
        "dead_endpoint": "ipc:///wb/sock/nobody.sock"}, share / "sock")
    assert "exception" not in result, result.get("exception")
    assert result["run"]["registered"], "the plug-in did not register"
    assert result["run"]["success"], result
    assert result["layers"][0] == f"[wordbrush] {prompt}" and len(result["layers"]) == 2
    assert result["new_above_source"] and result["original_unchanged"]
    assert result["outside_alpha_nonzero"] == 0
    assert result["selected_after"] == [result["layers"][-1]]  # the source, not the patch
    assert not result["dead"]["success"] and result["dead_layers_unchanged"]
    assert "no wordbrush engine answers" in result["dead"]["message"], result["dead"]
    assert result["deep"]["success"], result["deep"]
    assert result["profiled"]["success"], result["profiled"]  # an sRGB profile of its own
    assert len(result["profiled_layers"]) == 2
    assert result["profiled_label"] is None or "sRGB" in result["profiled_label"]
    group = result["deep_group"]
    assert group["is_group"] and group["name"] == f"[wordbrush] {prompt}", group
    assert group["children"] == [f"[wordbrush] {prompt} #1", f"[wordbrush] {prompt} #2"], group
    assert result["deep_original_unchanged"]
    # Show Next Variation, then Keep Shown Variation: the second takes the group's place
    assert result["next"]["success"] and result["shown_after_next"] == [False, True], result
    assert not result["not_a_group"]["success"]  # the source layer is no variation
    assert result["keep"]["success"], result["keep"]
    assert result["after_keep"] == [[f"[wordbrush] {prompt} #2", False, True],
                                    ["Background", False, True]], result["after_keep"]
    assert result["kept_pixels_equal"]
    after = np.asarray(Image.open(share / "after.png").convert("RGB"))
    judge = PackRegistry([REPO / "packs"]).get("demo").get("judge")
    read = judge_read(judge, [crop_frame(after, BoxFraming().fit(box).frame_rect(), 64)])[0]
    assert read["color"] == new_color, f"the judge reads {read} after {prompt!r}"
    assert np.array_equal(after[mask == 0], scene.image[mask == 0])
