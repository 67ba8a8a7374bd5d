"""A pack as the official files make one: no vocabulary, and its encoder, generator and
CLIP each taking another size (FFHQ: 256, 1024 and 224). Every method edits on it with
free text, as in the papers, and the precomputes make their artefacts from its own
generator, resuming after an interrupt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine import methods
from engine.imaging import Patch, composite_over, decode_pixels
from engine.packs import PackRegistry
from engine.runner import EditRunner
from engine.training import directions as precompute
from protocol.framing import Buffer
from protocol.messages import request_for_selection
from tests.support.canvas import random_canvas
from tests.support.packs import make_pack

#: encoder input, generator output, CLIP input: three different sizes
SIZES = {"encoder_size": 32, "size": 64, "clip_size": 48}
FAST = {"paint-by-word": {"steps": 2, "views": 2}, "latent-optimization": {"steps": 2},
        "feu": {"k": 5}}


def _free_pack(folder: Path) -> Path:
    root = make_pack(folder / "faces", name="faces", vocabulary={}, clipinverter=True,
                     refine_steps=1, **SIZES)
    manifest = root / "pack.json"
    import json

    data = json.loads(manifest.read_text())
    data["sampling"] = {"truncation": 0.7}
    manifest.write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PackRegistry:
    folder = tmp_path_factory.mktemp("free")
    _free_pack(folder)
    pack = PackRegistry([folder]).get("faces")
    precompute.precompute_global_directions(pack, n_images=2, n_stats=64, progress=False,
                                            say=lambda _m: None)
    precompute.precompute_feu_corpus(pack, n_images=24, batch=8, progress=False,
                                     say=lambda _m: None)
    return PackRegistry([folder])


def _canvas() -> tuple[np.ndarray, np.ndarray]:
    return random_canvas(5, 90, 70, (25, 15, 60, 50), edge=120)


@pytest.mark.parametrize("method", ["clipinverter", "paint-by-word", "latent-optimization",
                                    "global-directions", "feu"])
def test_every_method_edits_free_text_at_three_sizes(registry: PackRegistry,
                                                     method: str) -> None:
    pack = registry.get("faces")
    assert pack.get("encoder").config.input_size == 32 and pack.resolution == 64
    assert pack.get("clip").image_size == 48
    rgba, sel = _canvas()
    request = request_for_selection(
        Buffer("layer", 90, 70, "rgba8", rgba.tobytes()), sel.tobytes(), pack.framing,
        prompt="a smiling face with blonde hair", method=method, pack="faces",
        params=FAST.get(method, {}), seed=1)
    outcome = EditRunner(registry, "cpu").run_local(request)
    patch = outcome.patches[0]
    pixels = decode_pixels(patch.data, patch.width, patch.height, patch.format)
    out = composite_over(rgba, Patch(pixels, outcome.offset, patch.format))
    assert np.array_equal(out[sel == 0], rgba[sel == 0])
    assert not np.array_equal(out[sel == 255], rgba[sel == 255])
    info = outcome.info
    # nothing was read against a vocabulary the pack does not have
    assert "read_as_asked" not in info
    assert info["paste"] == "render"
    if method == "global-directions":
        assert info["neutral"] == "a photo" and info["target"] == "a smiling face with " \
            "blonde hair"


def test_describe_says_which_options_a_pack_supports(registry: PackRegistry) -> None:
    """``info``'s pack entry names the prompt reading: free text here, so the options that
    read prompts against a vocabulary are listed as having no effect."""
    from engine.runner import prompt_reading

    reading = prompt_reading(registry.get("faces").manifest.data.get("vocabulary"))
    assert reading["vocabulary"] is False
    assert {"describe_region", "keep_unnamed", "auto_strength", "auto_alpha",
            "neutral_from_region", "contrast_region", "keep_background"} <= set(
        reading["no_effect"])
    [info] = [p for p in EditRunner(registry, "cpu").describe()["packs"] if p["name"] == "faces"]
    assert info["prompt_reading"] == reading
    assert set(info["methods"]) == set(methods.available())


def test_feu_corpus_is_the_generators_samples(registry: PackRegistry) -> None:
    corpus = registry.get("faces").get("feu_corpus")
    assert corpus["source"] == "generator samples, truncation 0.7"
    assert corpus["embeddings"].shape == (24, 32)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("what", ["global-directions", "feu"])
def test_precompute_resumes_after_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               what: str) -> None:
    """Stopped half way (the first run's work kept in ``.partial``), a second run continues
    where the first stopped and gives the artefact an uninterrupted run gives."""
    def run(folder: Path) -> dict:
        pack = PackRegistry([folder]).get("faces")
        if what == "feu":
            path = precompute.precompute_feu_corpus(pack, n_images=12, batch=4, progress=False,
                                                    say=lambda _m: None)
        else:
            path = precompute.precompute_global_directions(pack, n_images=2, n_stats=32,
                                                           batch=4, progress=False,
                                                           say=lambda _m: None)
        return torch.load(path, weights_only=True)

    whole = run(_free_pack(tmp_path / "a").parent)
    folder = _free_pack(tmp_path / "b").parent
    pack = PackRegistry([folder]).get("faces")
    clip = pack.get("clip")
    real = clip.encode_image
    calls = {"n": 0}

    def encode_then_stop(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 4:  # the estimate's two, then one batch, then stop
            raise _Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(clip, "encode_image", encode_then_stop)
    messages: list[str] = []
    with pytest.raises(_Stop):
        if what == "feu":
            precompute.precompute_feu_corpus(pack, n_images=12, batch=4, progress=False,
                                             say=messages.append)
        else:
            precompute.precompute_global_directions(pack, n_images=2, n_stats=32, batch=4,
                                                    progress=False, say=messages.append)
    assert "about" in messages[0] and "run again to continue" in messages[0]
    partial = folder / "faces" / ("feu_corpus.pt.partial" if what == "feu"
                                  else "global_directions.pt.partial")
    assert partial.is_file()
    monkeypatch.undo()
    resumed_messages: list[str] = []
    pack = PackRegistry([folder]).get("faces")
    if what == "feu":
        path = precompute.precompute_feu_corpus(pack, n_images=12, batch=4, progress=False,
                                                say=resumed_messages.append)
    else:
        path = precompute.precompute_global_directions(pack, n_images=2, n_stats=32, batch=4,
                                                       progress=False,
                                                       say=resumed_messages.append)
    assert "continuing after" in resumed_messages[0]
    assert not partial.exists()
    again = torch.load(path, weights_only=True)
    for key, value in whole.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(again[key], value), key
