"""A complete tiny pack with random weights, saved in the official layouts (for tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.models.clip import create_clip, save_clip
from engine.models.clipinverter import CLIPAdapter, CLIPRemapper, level_channels, save_clipinverter
from engine.models.e4e import E4EConfig, Encoder4Editing, save_e4e
from engine.models.judge import Judge, JudgeConfig, save_judge
from engine.models.stylegan2 import Generator, save_rosinality
from engine.training.data import vocab

CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8, 64: 8}
CLIP_CONFIG = dict(embed_dim=32,
                   vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=8,
                                   head_width=32, mlp_ratio=2.0),
                   text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                                 layers=1))


def encoder_config(input_size: int = 32, n_styles: int = 8) -> E4EConfig:
    return E4EConfig.small(input_size=input_size, n_styles=n_styles, style_dim=32,
                           widths=(16, 16, 32, 32), depth_units=(1, 1, 1, 1), stem_width=16,
                           style_width=16)


def clip_config(image_size: int = 32) -> dict:
    return {**CLIP_CONFIG, "vision_cfg": {**CLIP_CONFIG["vision_cfg"], "image_size": image_size}}


def make_pack(folder: Path, name: str = "tiny", judge: bool = False,
              refine_steps: int = 0, *, size: int = 32, encoder_size: int = 32,
              clip_size: int = 32, vocabulary: dict | None = None,
              clipinverter: bool = False, framing: dict | None = None) -> Path:
    """A pack (generator, encoder, CLIP; optionally a judge) with random weights: a
    ``size`` px generator, an encoder taking ``encoder_size`` px and a CLIP taking
    ``clip_size`` px (32 each by default). ``refine_steps`` > 0 names inversion refinement
    in its manifest; ``vocabulary`` replaces the default ``{"color": ["red"]}`` (``{}``: a
    pack without one, as the official files make); ``clipinverter`` adds that method's
    networks (random, in the released layout); ``framing`` replaces the box framing
    (``{"kind": "ffhq"}``: a face pack)."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    channels = {k: v for k, v in CHANNELS.items() if k <= size}
    n_latent = 2 * size.bit_length() - 4
    g = Generator(size, style_dim=32, n_mlp=2, channels=channels)
    save_rosinality(g, folder / "generator.pt", torch.randn(32), dtype=torch.float16)
    enc_config = encoder_config(encoder_size, n_latent)
    enc = Encoder4Editing(enc_config)
    save_e4e(enc, folder / "encoder.pt", torch.randn(n_latent, 32), {"dataset_type": "tiny"})
    clip_cfg = clip_config(clip_size)
    clip = create_clip(config=clip_cfg)
    save_clip(clip, folder / "clip.pt", half=True)
    vocabulary = {"color": ["red"]} if vocabulary is None else vocabulary
    manifest = {
        "format": 1, "name": name, "title": "Tiny", "domain": "noise", "resolution": size,
        "framing": framing or {"kind": "box", "factor": 0.7},
        "generator": {"file": "generator.pt", "size": size, "style_dim": 32, "n_mlp": 2,
                      "channels": {str(k): v for k, v in channels.items()}},
        "encoder": {"file": "encoder.pt", "format": "e4e", "config": enc_config.to_dict()},
        "clip": {"file": "clip.pt", "config": clip_cfg},
        "examples": ["red"],
    }
    if vocabulary:
        manifest["vocabulary"] = vocabulary
    if clipinverter:
        levels = level_channels(enc)
        save_clipinverter(CLIPAdapter(levels, 32), CLIPRemapper(2 * (size.bit_length() - 3), 32,
                                                                32), folder / "clipinverter.pt")
        manifest["components"] = {"clipinverter": {"file": "clipinverter.pt"}}
    if refine_steps:
        manifest["inversion"] = {"refine_steps": refine_steps, "refine_lr": 0.02}
    if judge:
        cfg = JudgeConfig(vocab={k: list(v) for k, v in vocab().items()}, input_size=32,
                          widths=(8, 16), hidden=16)
        save_judge(Judge(cfg), folder / "judge.pt")
        manifest.setdefault("components", {})["judge"] = {"file": "judge.pt"}
        manifest["vocabulary"] = {k: list(v) for k, v in vocab().items()}
    (folder / "pack.json").write_text(json.dumps(manifest))
    return folder
