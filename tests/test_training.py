"""The demo-pack training stages: each runs, checkpoints, resumes, and the export is a pack
that loads strictly in the official layouts. (A few steps each: quality is judged by
`wordbrush eval pack` on the trained pack.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.packs import PackRegistry
from engine.training.autoencoder import build_models
from engine.training.demo_pack import run_stages

CPU = torch.device("cpu")
SMALL = {
    "judge": {"steps": 3, "batch": 8, "n_crops": 8},
    "clip": {"steps": 2, "batch": 8, "n_crops": 8},
    "autoencoder": {"steps": 3, "batch": 4, "n_crops": 8},
    "mapping": {"steps": 3, "batch": 16, "n_real": 64},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("work")
    out = tmp_path_factory.mktemp("packs") / "demo"
    options = {**SMALL, "export": {"out": out}}
    assert run_stages(["judge", "clip", "autoencoder", "mapping", "export"], work, CPU,
                      stage_options=options, log=lambda s: None)
    return work, out


def test_every_stage_leaves_its_files(trained: tuple[Path, Path]) -> None:
    work, _ = trained
    for stage in ("judge", "clip", "autoencoder", "mapping"):
        assert (work / f"{stage}.done.json").is_file()
    assert (work / "samples").is_dir()
    timings = json.loads((work / "timings.json").read_text())
    assert set(timings) >= {"judge", "clip", "autoencoder", "mapping", "export"}


def test_export_loads_strictly_as_a_pack(trained: tuple[Path, Path]) -> None:
    work, out = trained
    manifest = json.loads((out / "pack.json").read_text())
    assert manifest["framing"] == {"kind": "box", "factor": 0.75}
    assert set(manifest["vocabulary"]) == {"shape", "color", "size", "background"}
    pack = PackRegistry([out.parent]).get("demo")
    gen, enc, clip, judge = (pack.get(c) for c in ("generator", "encoder", "clip", "judge"))
    assert enc.latent_avg.shape == (10, 128)
    # the exported encoder (latent_avg folded into the first head's bias) equals the trained one
    _, trained_enc = build_models()
    trained_enc.load_state_dict(torch.load(work / "autoencoder.pt", weights_only=True)["encoder"])
    trained_enc.eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(enc(x) + enc.latent_avg, trained_enc(x), atol=5e-2)
        assert gen.synthesis(gen.mapping(torch.randn(2, 128))).shape == (2, 3, 64, 64)
    assert clip.encode_text(["a red star"]).shape == (1, 64)
    assert set(judge.probabilities(x)) == {"shape", "color", "size", "background"}


def test_a_stopped_stage_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    opts = {"judge": {"steps": 4, "batch": 8, "n_crops": 8}}
    # a zero budget stops after the first step, with a checkpoint
    assert not run_stages(["judge"], tmp_path, CPU, stage_minutes=1e-9, stage_options=opts,
                          log=lambda s: None)
    state = torch.load(tmp_path / "judge.ckpt", weights_only=True)
    assert state["step"] == 1
    assert run_stages(["judge"], tmp_path, CPU, stage_options=opts, log=lambda s: None)
    assert (tmp_path / "judge.pt").is_file()
    # done stages are skipped
    assert run_stages(["judge"], tmp_path, CPU, stage_options=opts, log=lambda s: None)


def test_clipinverter_edit_pairs_show_what_their_captions_ask() -> None:
    """CLIPInverter's paired term: each caption names the target's values for the keys it
    mentions, changes nothing it does not mention, and the target frame has them."""
    import numpy as np

    from engine.training.data import FrameSource, sample_edit
    from engine.world import parse_prompt

    rng = np.random.default_rng(0)
    attrs = {"shape": "circle", "color": "red", "size": "small", "background": "beige"}
    n_changed = []
    for _ in range(400):
        text, source_text, changes = sample_edit(attrs, rng)
        named = parse_prompt(text)
        assert set(changes) <= set(named)
        assert all(changes[k] != attrs[k] for k in changes)
        assert named == {k: {**attrs, **changes}[k] for k in named}
        assert parse_prompt(source_text) == {k: attrs[k] for k in named}
        n_changed.append(len(changes))
    assert 0.18 < np.mean(np.array(n_changed) == 0) < 0.32  # match_fraction 0.25
    assert max(n_changed) >= 3

    source = FrameSource(size=32, hard_fraction=0.25, crop_fraction=0.0)
    pairs = source.pairs(3, 8)
    assert pairs.source.images.shape == pairs.target.images.shape == (8, 3, 32, 32)
    keys = ("shape", "color", "size", "background")
    vocab = {"shape": ("circle", "square", "triangle", "star")}
    for i in range(8):
        asked = parse_prompt(pairs.captions[i])
        moved = {keys[k] for k in range(4)
                 if pairs.source.labels[i, k] != pairs.target.labels[i, k]}
        assert moved <= set(asked)
        assert bool(moved) == bool(pairs.changed[i])
        if "shape" in asked:
            assert vocab["shape"][int(pairs.target.labels[i, 0])] == asked["shape"]
    again = source.pairs(3, 8)
    assert torch.equal(again.target.images, pairs.target.images)
    assert again.captions == pairs.captions
