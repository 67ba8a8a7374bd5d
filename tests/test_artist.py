"""What an artist meets: the strength they set is the strength used (and every result
says which), and words the pack does not know are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.packs import PackRegistry
from engine.runner import EditRunner
from engine.words import unknown_words
from protocol.events import strength_note
from protocol.framing import Buffer
from protocol.messages import request_for_selection
from tests.support.packs import make_pack


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> EditRunner:
    folder = tmp_path_factory.mktemp("packs")
    make_pack(folder / "tiny", judge=True, clipinverter=True)  # the world's vocabulary
    make_pack(folder / "free", name="free", vocabulary={}, clipinverter=True)
    return EditRunner(PackRegistry([folder]), "cpu")


def _request(prompt: str, pack: str = "tiny", params: dict | None = None):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    sel = np.zeros((48, 64), np.uint8)
    sel[12:36, 16:44] = 255
    return request_for_selection(Buffer("layer", 64, 48, "rgba8", rgba.tobytes()),
                                 sel.tobytes(), {"kind": "box", "factor": 0.7}, prompt=prompt,
                                 method="clipinverter", pack=pack, params=params or {}, seed=1)


def test_a_strength_the_artist_sets_is_the_strength_used(runner: EditRunner) -> None:
    """Set, the automatic step does not replace it (0.5 gives 0.5, not what the ladder
    would choose); unset, the ladder chooses; every result reports the strength and
    whether it was set."""
    plan = runner.plan(_request("a blue star", params={"strength": 0.5}))
    assert plan.params["auto_strength"] is False
    assert runner.plan(_request("a blue star")).params["auto_strength"] is True
    # asked for explicitly, both: the artist's word
    both = runner.plan(_request("a blue star", params={"strength": 0.5,
                                                        "auto_strength": True}))
    assert both.params["auto_strength"] is True
    info = runner.run_local(_request("a blue star", params={"strength": 0.5})).info
    assert info["strength"] == 0.5 and info["strength_set"] is True
    assert strength_note(info) == "strength 0.5, as set"
    info = runner.run_local(_request("a blue star")).info
    assert info["strength_set"] is False and "chosen automatically" in strength_note(info)


def test_the_direction_methods_keep_an_alpha_the_artist_sets() -> None:
    from engine.methods.directions import AUTO_ALPHA

    assert set(AUTO_ALPHA.set_by) == {"alpha", "strength"}


def test_words_the_pack_does_not_know_are_named(runner: EditRunner) -> None:
    info = runner.run_local(_request("make it bleu")).info
    assert info["unknown_words"] == ["bleu"]
    assert any("'bleu'" in w for w in info["warnings"])
    assert "unknown_words" not in runner.run_local(_request("make it a small blue circle")).info
    # a pack without a vocabulary claims nothing
    free = runner.run_local(_request("un cercle rouge", pack="free")).info
    assert "unknown_words" not in free


def test_unknown_words_by_the_manifest() -> None:
    manifest = {"vocabulary": {"color": ["red", "blue"], "shape": ["circle"]},
                "synonyms": {"shape": {"circle": ["disc"]}}}
    assert unknown_words("un cercle rouge", manifest) == ["un", "cercle", "rouge"]
    assert unknown_words("make the red disc blue, please", manifest) == []
    assert unknown_words("a red circle", {}) == []


def test_the_editors_show_the_strength_used() -> None:
    assert strength_note({"strength": 1.25, "strength_set": False}) == \
        "strength 1.25, chosen automatically"
    assert strength_note({}) == ""
    assert Path  # (the plug-ins append the note to their status line; see their tests)


def test_precompute_leaves_the_checkout_clean(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """For the repository's own pack, precompute writes under the user's data folder, and
    the pack reads what it wrote from there; the checkout's files are untouched."""
    import subprocess

    from engine.packs import REPO_PACKS, Manifest
    from engine.training.directions import precompute_feu_corpus

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    before = (REPO_PACKS / "demo" / "pack.json").read_bytes()
    pack = PackRegistry([REPO_PACKS]).get("demo")
    path = precompute_feu_corpus(pack, n_images=8, batch=4, progress=False,
                                 say=lambda _m: None)
    assert path == tmp_path / "wordbrush" / "pack-artefacts" / "demo" / "feu_corpus.pt"
    assert (REPO_PACKS / "demo" / "pack.json").read_bytes() == before
    status = subprocess.run(["git", "status", "--porcelain", "--", str(REPO_PACKS)],
                            capture_output=True, text=True, cwd=REPO_PACKS.parent)
    assert status.returncode != 0 or status.stdout == ""
    manifest = Manifest.read(REPO_PACKS / "demo")
    assert manifest.file("feu_corpus") == path
    assert PackRegistry([REPO_PACKS]).get("demo").get("feu_corpus")["embeddings"].shape[0] == 8


def _reference() -> Buffer:
    swatch = np.zeros((24, 24, 4), np.uint8)
    swatch[..., 1] = 200
    swatch[..., 3] = 255
    return Buffer("reference", 24, 24, "rgba8", swatch.tobytes())


def test_a_prompt_and_a_reference_together(runner: EditRunner) -> None:
    """Beside a prompt, the reference is not dropped: on a pack with words it becomes the
    words the prompt leaves out (colour, shape), read by the pack's CLIP; on a pack without
    it joins the text in the CLIP target by its weight."""
    import dataclasses

    request = dataclasses.replace(_request("a star"), reference=_reference())
    info = runner.run_local(request).info
    read = info["reference_read_as"]
    assert set(read) == {"color"} and info["prompt_used"] == f"a {read['color']} star"
    # named both: the image adds nothing it could say in words, and is used as an image
    both = dataclasses.replace(_request("a blue star"), reference=_reference())
    assert "reference_read_as" not in runner.run_local(both).info
    free = dataclasses.replace(_request("a smile", pack="free"), reference=_reference())
    assert "reference_read_as" not in runner.run_local(free).info


def test_the_clip_target_mixes_text_and_image_by_weight(runner: EditRunner) -> None:
    import torch

    from engine.methods.base import MethodInputs
    from engine.methods.guidance import clip_target

    pack = runner.packs.get("free")
    clip = pack.get("clip")
    image = torch.rand(1, 3, 32, 32) * 2 - 1

    def target(weight: float) -> torch.Tensor:
        inputs = MethodInputs(image=image, mask=torch.ones(1, 1, 32, 32), prompt="a smile",
                              params={"reference_weight": weight}, seed=0, pack=pack,
                              reference=image)
        return clip_target(clip, inputs)[0]

    assert torch.allclose(target(0.0), clip.encode_prompt("a smile"), atol=1e-5)
    assert torch.allclose(target(1.0), clip.encode_image(image, differentiable=False)[0],
                          atol=1e-5)
    mixed = target(0.5)
    assert abs(float(mixed.norm()) - 1) < 1e-5
