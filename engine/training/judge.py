"""Stage ``judge``: the attribute classifier that scores inversions, samples and edits.

Trained on renderer frames, hard-edged frames and framed canvas crops, with blur and
noise (inversions and edits are softer than the originals). It never sees the
independent test set, and no other model trains against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.augment import random_blur
from engine.models.judge import Judge, JudgeConfig, accuracy, save_judge
from engine.training.common import Checkpoint, StepLoop, cosine_lr, seed_everything
from engine.training.data import FrameSource, scene_crop_pool, vocab
from engine.world import ATTR_KEYS, WORLD_SPEC, WorldSpec

__all__ = ["train_judge"]

STAGE = "judge"


def train_judge(
    work: Path,
    device: torch.device,
    steps: int = 2000,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 1,
    budget_s: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
    n_crops: int = 3000,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the judge; writes ``work/judge.pt`` when the schedule completes."""
    ckpt = Checkpoint(work, STAGE)
    gen = seed_everything(seed)
    config = JudgeConfig(vocab={k: list(v) for k, v in vocab(spec).items()},
                         input_size=spec.frame_size)
    judge = Judge(config).to(device)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    parts = {"model": judge, "opt": opt}
    start = ckpt.resume(parts, gen)
    crops = scene_crop_pool(n_crops, first_index=200_000, cache=work / "judge_crops.npz",
                            progress=progress, spec=spec)
    source = FrameSource(spec, crops=crops, hard_fraction=0.25, crop_fraction=0.25,
                         seed_offset=10_000_000)
    loop = StepLoop(steps, start, desc="judge", budget_s=budget_s, disable=not progress)
    judge.train()
    acc: dict[str, float] = {}
    for step in loop:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=100)
        b = source.batch(step, batch).to(device)
        x = random_blur(b.images, 1.6, 0.5, gen)
        x = x + 0.04 * torch.rand(len(x), 1, 1, 1, generator=gen).to(device) * torch.randn(
            x.shape, generator=gen).to(device)
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[k], b.labels[:, i], ignore_index=-1)
                   for i, k in enumerate(ATTR_KEYS))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            acc = accuracy(logits, b.labels, ATTR_KEYS)
            loop.show(loss=float(loss.detach()), **{k[:3]: v for k, v in acc.items()})
        if loop.should_save(step):
            ckpt.snapshot(parts, step + 1, gen)
    if loop.stopped_early:
        return {"stage": STAGE, "finished": False}
    judge.eval()
    save_judge(judge, work / "judge.pt")
    summary = {"stage": STAGE, "finished": True, "steps": steps, "train_batch_accuracy": acc}
    ckpt.mark_done(summary)
    return summary
