"""A pack made from the official files, end to end through the command line: the files a
user of the FFHQ methods has (rosinality generator, e4e encoder, open_clip ViT-B-32,
CLIPInverter's released checkpoint), in their upstream layouts with random weights, become
a pack with ``wordbrush pack create`` (framing faces, as the encoder's training options
say), and every method edits the face in a photo with it.

The generator is 256 px so that CI's time allows it; the code path is the 1024 px one
(e4e's full encoder at 256 px input, ViT-B-32 at 224 px: three sizes), and the 1024 px
pack is timed by ``wordbrush bench edit --pack ffhq`` (BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.official_files import write_official_files
from engine.packs import PackRegistry
from engine.training.directions import register_component
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.slow
SIZE = 256
STEPS = {"paint-by-word": ["steps=1", "views=2"], "latent-optimization": ["steps=1"],
         "feu": ["k=5"]}


def _global_directions_stand_in(pack_root: Path) -> None:
    """``precompute global-directions`` renders every style channel of the generator 64
    times (11,520 channels x 2 x 32 renders at 256 px: hours on a CPU), so the test
    writes an artefact of the same format with random relevances; the precompute itself
    runs, resumes and estimates on small packs (tests/test_free_text_packs.py)."""
    generator = PackRegistry([pack_root.parent]).get(pack_root.name).get("generator")
    layers, channels = [], []
    for lay in generator.style_layers:
        if not lay.is_rgb:
            layers += [lay.index] * lay.channels
            channels += range(lay.channels)
    g = torch.Generator().manual_seed(0)
    fs3 = torch.randn(len(layers), 512, generator=g)
    torch.save({"fs3": (fs3 / fs3.norm(dim=1, keepdim=True)).half(),
                "layers": torch.tensor(layers), "channels": torch.tensor(channels),
                "std": torch.rand(len(layers), generator=g) + 0.1, "alpha_probe": 5.0,
                "n_images": 1}, pack_root / "global_directions.pt")
    register_component(pack_root, "global_directions", "global_directions.pt",
                       format="wordbrush-global-directions")


def test_official_files_make_a_pack_that_edits(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("skimage", reason="scikit-image (a test dependency) ships the photo")
    from tests.support.faces import face_photo

    files = write_official_files(tmp_path / "files", SIZE)
    packs = tmp_path / "packs"
    assert main(["pack", "create", "ffhq", "--link", "--resolution", str(SIZE),
                 "--generator", str(files["generator"]), "--encoder", str(files["encoder"]),
                 "--clip-weights", str(files["clip"]), "--clipinverter",
                 str(files["clipinverter"]), "--neutral-prompt", "a face",
                 "--out", str(packs / "ffhq")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "framing: ffhq (the encoder was trained on faces" in out
    assert "clipinverter load strictly" in out
    assert main(["precompute", "feu", "--pack", "ffhq", "--pack-dir", str(packs),
                 "--images", "6"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "FEU corpus: 6 samples of the generator" in out and "about" in out
    _global_directions_stand_in(packs / "ffhq")

    photo, mask_path, rgb, mask = face_photo(tmp_path)
    engine = EngineProcess(tmp_path, "--pack-dir", str(packs))
    try:
        assert main(["info", "--endpoint", engine.endpoint]) == 0
        info = capsys.readouterr().out
        [line] = [ln for ln in info.splitlines() if ln.strip().startswith("ffhq")]
        assert "256px, framing ffhq" in line and "runs clipinverter by default" in line
        assert "prompts: free text" in info
        for method in ("clipinverter", "paint-by-word", "latent-optimization",
                       "global-directions", "feu"):
            result = tmp_path / f"{method}.png"
            params = [arg for p in STEPS.get(method, []) for arg in ("--param", p)]
            code = main(["edit", str(photo), "--mask", str(mask_path), "--prompt",
                         "a smiling face with blonde hair", "--pack", "ffhq", "--method",
                         method, *params, "--seed", "1", "--endpoint", engine.endpoint,
                         "-o", str(result)])
            assert code == 0, (method, capsys.readouterr().err)
            edited = np.asarray(Image.open(result).convert("RGB"))
            assert np.array_equal(edited[mask == 0], rgb[mask == 0]), method
            assert not np.array_equal(edited[mask == 255], rgb[mask == 255]), method
            assert "face 1: box" in capsys.readouterr().out
    finally:
        engine.stop()
