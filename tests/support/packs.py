"""A complete tiny pack with random weights, saved in the official layouts (for tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.models.clip import create_clip, save_clip
from engine.models.e4e import E4EConfig, Encoder4Editing, save_e4e
from engine.models.judge import Judge, JudgeConfig, save_judge
from engine.models.stylegan2 import Generator, save_rosinality
from engine.training.data import vocab

CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8}
CLIP_CONFIG = dict(embed_dim=32,
                   vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=8,
                                   head_width=32, mlp_ratio=2.0),
                   text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                                 layers=1))


def encoder_config() -> E4EConfig:
    return E4EConfig.small(input_size=32, n_styles=8, style_dim=32, widths=(16, 16, 32, 32),
                           depth_units=(1, 1, 1, 1), stem_width=16, style_width=16)


def make_pack(folder: Path, name: str = "tiny", judge: bool = False,
              refine_steps: int = 0) -> Path:
    """A 32-px pack (generator, encoder, CLIP; optionally a judge) with random weights;
    ``refine_steps`` > 0 names inversion refinement in its manifest."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    g = Generator(32, style_dim=32, n_mlp=2, channels=CHANNELS)
    save_rosinality(g, folder / "generator.pt", torch.randn(32), dtype=torch.float16)
    enc = Encoder4Editing(encoder_config())
    save_e4e(enc, folder / "encoder.pt", torch.randn(8, 32), {"dataset_type": "tiny"})
    clip = create_clip(config=CLIP_CONFIG)
    save_clip(clip, folder / "clip.pt", half=True)
    manifest = {
        "format": 1, "name": name, "title": "Tiny", "domain": "noise", "resolution": 32,
        "framing": {"kind": "box", "factor": 0.7},
        "generator": {"file": "generator.pt", "size": 32, "style_dim": 32, "n_mlp": 2,
                      "channels": {str(k): v for k, v in CHANNELS.items()}},
        "encoder": {"file": "encoder.pt", "format": "e4e",
                    "config": encoder_config().to_dict()},
        "clip": {"file": "clip.pt", "config": CLIP_CONFIG},
        "vocabulary": {"color": ["red"]}, "examples": ["red"],
    }
    if refine_steps:
        manifest["inversion"] = {"refine_steps": refine_steps, "refine_lr": 0.02}
    if judge:
        cfg = JudgeConfig(vocab={k: list(v) for k, v in vocab().items()}, input_size=32,
                          widths=(8, 16), hidden=16)
        save_judge(Judge(cfg), folder / "judge.pt")
        manifest["components"] = {"judge": {"file": "judge.pt"}}
        manifest["vocabulary"] = {k: list(v) for k, v in vocab().items()}
    (folder / "pack.json").write_text(json.dumps(manifest))
    return folder
