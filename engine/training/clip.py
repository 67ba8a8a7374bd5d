"""Stage ``clip``: the tiny OpenCLIP model, trained contrastively on the world's captions.

Recipe (measured in ``../shared/README.md`` and here): AdamW 1e-3, weight decay 0.05,
100 warm-up steps then cosine, batch 256, symmetric InfoNCE, gradient clipping 1.0, the
train caption templates only. Images are shown through :func:`engine.augment.clip_views`
(the views the edit losses use) and sometimes blurred, like generator output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.augment import clip_views, random_blur
from engine.models.clip import TINY_CLIP_CONFIG, create_clip, save_clip
from engine.training.common import Checkpoint, StepLoop, cosine_lr, seed_everything
from engine.training.data import FrameSource, captions_for, scene_crop_pool
from engine.world import WORLD_SPEC, WorldSpec

__all__ = ["train_clip"]

STAGE = "clip"


def train_clip(
    work: Path,
    device: torch.device,
    steps: int = 1600,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 2,
    budget_s: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
    n_crops: int = 2000,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the tiny CLIP; writes ``work/clip.pt`` (fp32) when complete."""
    ckpt = Checkpoint(work, STAGE)
    gen = seed_everything(seed)
    clip = create_clip(config=TINY_CLIP_CONFIG, freeze=False, device=device)
    model = clip.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    parts = {"model": model, "opt": opt}
    start = ckpt.resume(parts, gen)
    crops = scene_crop_pool(n_crops, first_index=300_000, cache=work / "clip_crops.npz",
                            progress=progress, spec=spec)
    source = FrameSource(spec, crops=crops, hard_fraction=0.15, crop_fraction=0.1,
                         seed_offset=20_000_000)
    loop = StepLoop(steps, start, desc="clip", budget_s=budget_s, disable=not progress)
    loss = torch.tensor(float("nan"))
    for step in loop:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=100)
        b = source.batch(step, batch)
        rng = np.random.default_rng(seed * 1_000_003 + step)
        texts = captions_for(b.labels, rng, spec)
        images = random_blur(b.images, 1.2, 0.3, gen)
        images = clip_views(images, 1, gen).to(device)
        tokens = clip.tokenize(texts).to(device)
        img = F.normalize(model.encode_image(clip.preprocess(images)), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        target = torch.arange(len(img), device=device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        if step % 10 == 0:
            loop.show(loss=float(loss.detach()), scale=float(model.logit_scale.exp().detach()))
        if loop.should_save(step):
            ckpt.snapshot(parts, step + 1, gen)
    if loop.stopped_early:
        return {"stage": STAGE, "finished": False}
    save_clip(model, work / "clip.pt")
    summary = {"stage": STAGE, "finished": True, "steps": steps, "final_loss": float(loss.detach())}
    ckpt.mark_done(summary)
    return summary
