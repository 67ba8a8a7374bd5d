"""Stage ``export``: the trained models written as a pack, in the official layouts.

* ``generator.pt``: rosinality ``{"g_ema", "latent_avg"}`` (fp16), mapping from stage
  ``mapping``, synthesis from stage ``autoencoder``; ``latent_avg`` = mean of mapped z.
* ``encoder.pt``: e4e ``{"state_dict": {"encoder.*"}, "opts", "latent_avg"}`` (fp16). The
  encoder was trained to output w directly; official e4e adds ``latent_avg`` to its output,
  so ``latent_avg`` is subtracted from the first style head's bias (every row is that head
  plus a delta, so the sum is unchanged).
* ``clip.pt``: the open_clip state dict (fp16), config in the manifest.
* ``judge.pt``: the evaluation classifier (fp32; small).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from engine.models.clip import TINY_CLIP_CONFIG, create_clip, save_clip
from engine.models.e4e import save_e4e
from engine.models.stylegan2 import save_rosinality
from engine.packs import MANIFEST_NAME, REPO_PACKS
from engine.training.autoencoder import GENERATOR_ARCH, build_models
from engine.world import WORLD_SPEC, WorldSpec, prompt_for
from engine.world.captions import SYNONYMS
from engine.world.spec import ATTR_KEYS

__all__ = ["DEMO_PACK_NAME", "export_pack", "manifest_for"]

DEMO_PACK_NAME = "demo"


def manifest_for(spec: WorldSpec, encoder_config: dict[str, Any]) -> dict[str, Any]:
    vocab = {"shape": list(spec.shapes), "color": list(spec.colors), "size": list(spec.sizes),
             "background": list(spec.backgrounds)}
    examples = [prompt_for({"color": "green"}), prompt_for({"shape": "star"}),
                prompt_for({"color": "blue", "shape": "triangle"}),
                prompt_for({"size": "large", "color": "yellow", "shape": "circle"})]
    return {
        "format": 1,
        "name": DEMO_PACK_NAME,
        "title": "Demo shapes (trained here)",
        "domain": "one flat-coloured shape on a plain background",
        "expects": "select one shape with some background around it; a tight box makes it "
                   "'large' in the frame, a loose one 'small'",
        "resolution": spec.frame_size,
        "framing": {"kind": "box", "factor": spec.framing_factor},
        "generator": {"file": "generator.pt", "format": "rosinality",
                      "size": GENERATOR_ARCH["size"], "style_dim": GENERATOR_ARCH["style_dim"],
                      "n_mlp": GENERATOR_ARCH["n_mlp"],
                      "channels": {str(k): v for k, v in GENERATOR_ARCH["channels"].items()}},
        "encoder": {"file": "encoder.pt", "format": "e4e", "config": encoder_config},
        "clip": {"file": "clip.pt", "config": TINY_CLIP_CONFIG, "tokenizer": "ViT-B-32"},
        "components": {"judge": {"file": "judge.pt", "format": "wordbrush-judge",
                                 "use": "evaluation only"}},
        "attribute_keys": list(ATTR_KEYS),
        "vocabulary": vocab,
        "synonyms": {key: {value: [w for w in words if w != value]
                           for value, words in SYNONYMS[key].items() if len(words) > 1}
                     for key in ATTR_KEYS},
        "examples": examples,
        "neutral_prompt": "a shape",
        # chosen by `wordbrush eval edits` on this pack (BENCHMARKS.md, session 10): trained
        # with the paired term and its gain calibrated, CLIPInverter reaches the asked
        # attribute as often as the optimisers, in one pass; where the pack has no
        # CLIPInverter files yet (`wordbrush train clipinverter`), the engine falls back to
        # paint-by-word
        "default_method": "clipinverter",
        "inversion_warning_psnr": 22.0,
        # the encoder alone reads back about half of the shapes; Adam steps on W+ recover
        # them (100 steps: 94.5%, `wordbrush eval pack` reports both; BENCHMARKS.md)
        "inversion": {"refine_steps": 150, "refine_lr": 0.02},
        "evaluation": {
            "selection": {"kind": "rect", "tight_margin": spec.tight_margin,
                          "loose_margin": spec.loose_margin,
                          "tight_margin_range": list(spec.tight_margin_range),
                          "loose_margin_range": list(spec.loose_margin_range)},
        },
        "world": spec.to_dict(),
    }


def export_pack(work: Path, out: Path | None = None, spec: WorldSpec = WORLD_SPEC,
                progress: bool = True) -> dict[str, Any]:
    out = out or (REPO_PACKS / DEMO_PACK_NAME)
    needed = ["autoencoder.pt", "mapping.pt", "clip.pt", "judge.pt"]
    missing = [n for n in needed if not (work / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{work}: missing {missing}; run the earlier stages first")
    generator, encoder = build_models()
    ae = torch.load(work / "autoencoder.pt", map_location="cpu", weights_only=True)
    generator.load_state_dict(ae["generator"])
    encoder.load_state_dict(ae["encoder"])
    mapping = torch.load(work / "mapping.pt", map_location="cpu", weights_only=True)
    generator.style.load_state_dict(mapping)
    generator.eval()
    encoder.eval()
    with torch.no_grad():
        w_avg = generator.mean_latent(20_000, seed=0).reshape(-1)
        head = encoder.styles[0].linear
        head.bias -= w_avg / head.lr_mul
    out.mkdir(parents=True, exist_ok=True)
    save_rosinality(generator, out / "generator.pt", w_avg, dtype=torch.float16)
    save_e4e(encoder, out / "encoder.pt", w_avg.repeat(encoder.n_styles, 1),
             opts={"stylegan_size": spec.frame_size, "encoder_type": "Encoder4Editing"},
             half=True)
    clip = create_clip(config=TINY_CLIP_CONFIG, weights=work / "clip.pt")
    save_clip(clip, out / "clip.pt", half=True)
    shutil.copy2(work / "judge.pt", out / "judge.pt")
    manifest = manifest_for(spec, encoder.config.to_dict())
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    return {"stage": "export", "finished": True, "out": str(out), "bytes": sizes,
            "total_mb": round(sum(sizes.values()) / 2**20, 2)}
