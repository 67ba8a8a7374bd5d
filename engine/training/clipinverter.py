"""``wordbrush train clipinverter``: CLIPInverter's two training stages for a pack.

Stage 1 trains the CLIPAdapter (generator, encoder and CLIP frozen) on the pack's world
frames with captions that ask for a change (75%) or describe the frame (25%). Losses, with
the paper's weights:

* directional CLIP (1.0): the image change in CLIP space follows the caption change (the
  source text is the same template filled with the frame's own attributes);
* the cycle pass (1.0): the edited image, edited back with its own caption, must give the
  input again: L2 (1.0), a perceptual term (0.6) and an identity term (0.1);
* for matching captions the edit itself must keep the input (same three terms);
* latent regularisation (0.005): ||residual||².

Beyond the paper, because our world has ground truth: ``paired`` (default 1.0) asks every
edit to be the world's own edit of the frame (:meth:`FrameSource.pairs`: the same object in
the same place with the caption's attributes set, the others kept), with the same three
terms. The paper has no such pairs for faces, so it rolls another image's caption and relies
on the directional loss alone; on this pack that recipe (``paired=0``, what sessions 1-7
shipped) trained an adapter whose residual stays near zero (AMA-single 7%, BENCHMARKS.md).

Substitutes for networks we cannot download: LPIPS (AlexNet) -> distances between the pack
encoder's feature taps (c1, c2); ArcFace identity -> cosine distance of the pack CLIP's
image embeddings. Neither is the pack's judge.

Stage 2 trains the CLIPRemapper alone with the directional loss, the reconstruction terms
for matching captions and an L2 pull of the remapped w to the unmapped one.

Last, :func:`calibrate_gain` picks the residual gain (what strength 1 means) that brings the
edits closest to the world's ground-truth edits on frames of the ``val`` split; the latent
regularisation leaves the trained residual short of the edit (BENCHMARKS.md, session 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from engine.methods.guidance import anchor_caption
from engine.models.clipinverter import (
    GAIN_KEY,
    CLIPAdapter,
    CLIPRemapper,
    level_channels,
    remapped_styles,
    save_clipinverter,
)
from engine.training.common import Checkpoint, StepLoop, cosine_lr, save_grid, seed_everything
from engine.training.data import FrameSource, vocab
from engine.training.directions import register_component
from engine.world import ATTR_KEYS, WORLD_SPEC, WorldSpec

__all__ = ["GAIN_GRID", "calibrate_gain", "extend_adapter", "train_clipinverter"]

WEIGHTS = {"l2": 1.0, "perceptual": 0.6, "identity": 0.1, "reg": 0.005, "direction": 1.0,
           "cycle": 1.0, "paired": 1.0}

#: residual gains :func:`calibrate_gain` tries
GAIN_GRID = tuple(float(g) for g in np.arange(0.5, 2.51, 0.125))


class _Losses:
    def __init__(self, encoder: torch.nn.Module, clip: Any) -> None:
        self.encoder, self.clip = encoder, clip

    def perceptual(self, a: Tensor, b: Tensor) -> Tensor:
        fa, fb = self.encoder.features(a), self.encoder.features(b)
        return sum(F.mse_loss(x, y) for x, y in zip(fa[:2], fb[:2], strict=True))

    def identity(self, a: Tensor, b: Tensor) -> Tensor:
        ea = self.clip.encode_image(a)
        eb = self.clip.encode_image(b, differentiable=False)
        return (1 - (ea * eb).sum(-1)).mean()

    def keep(self, a: Tensor, b: Tensor) -> Tensor:
        return (WEIGHTS["l2"] * F.mse_loss(a, b) + WEIGHTS["perceptual"] * self.perceptual(a, b)
                + WEIGHTS["identity"] * self.identity(a, b))

    def direction(self, edited: Tensor, source: Tensor, t_target: Tensor, t_source: Tensor,
                  active: Tensor) -> Tensor:
        if not active.any():
            return edited.sum() * 0
        d_img = self.clip.encode_image(edited) - self.clip.encode_image(source, False)
        d_txt = t_target - t_source
        cos = F.cosine_similarity(d_img[active], d_txt[active], dim=-1)
        return (1 - cos).mean()


def train_clipinverter(
    pack: Any,
    work: Path,
    device: torch.device,
    stage1_steps: int = 2000,
    stage2_steps: int = 400,
    batch: int = 16,
    lr: float = 5e-4,
    seed: int = 5,
    budget_s: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
    progress: bool = True,
    paired: float = WEIGHTS["paired"],
) -> dict[str, Any]:
    """Train (or resume) both stages; writes ``clipinverter.pt`` into the pack folder.

    On a finished work folder, more ``stage1_steps`` than it made continue stage 1 and
    retrain stage 2 (:func:`extend_adapter`); the same or fewer only recalibrate the gain.

    ``paired`` weighs the ground-truth edit term (0 = the paper's losses only)."""
    weights = {**WEIGHTS, "paired": paired}
    gen, enc, clip = (pack.get(c) for c in ("generator", "encoder", "clip"))
    seed_everything(seed)
    adapter = CLIPAdapter(level_channels(enc), clip.embed_dim).to(device)
    remapper = CLIPRemapper(2 * (gen.log_size - 2), gen.style_dim, clip.embed_dim).to(device)
    losses = _Losses(enc, clip)
    source = FrameSource(spec, size=gen.size, hard_fraction=0.2, crop_fraction=0.0,
                         seed_offset=70_000_000)
    summary: dict[str, Any] = {"stage": "clipinverter"}
    extend_adapter(Checkpoint(work, "clipinverter1"), Checkpoint(work, "clipinverter2"),
                   stage1_steps)
    for stage, steps, module in ((1, stage1_steps, adapter), (2, stage2_steps, remapper)):
        ckpt = Checkpoint(work, f"clipinverter{stage}")
        if ckpt.is_done():
            state = ckpt.load()
            assert state is not None
            module.load_state_dict(state["model"])
            continue
        opt = torch.optim.Adam(module.parameters(), lr=lr)
        parts = {"model": module, "opt": opt}
        state = ckpt.load()
        if state is not None and "opt" not in state:  # finished before optimiser states were kept
            module.load_state_dict(state["model"])
            start = int(state["step"])
        else:
            start = ckpt.resume(parts)
        if stage == 2:
            adapter.requires_grad_(False)
        loop = StepLoop(steps, start, desc=f"clipinverter stage {stage}", budget_s=budget_s,
                        disable=not progress)
        for step in loop:
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, steps, lr, warmup=50)
            pairs = source.pairs(stage * 1_000_000 + step, batch, match_fraction=0.25).to(device)
            b, active = pairs.source, pairs.changed
            t_own = clip.encode_text(pairs.source_captions)
            t_tgt = clip.encode_text(pairs.captions)
            with torch.no_grad():
                c1, c2, c3 = enc.features(b.images)
                w = enc.map2style(c1, c2, c3) + enc.latent_avg
                inversion = gen.synthesis(w, noise="fixed")
            delta = 0.1 * enc.map2style(*adapter((c1, c2, c3), t_tgt))
            if stage == 1:
                edited = gen.synthesis(w + delta, noise="fixed")
            else:
                styles = remapped_styles(gen, w + delta.detach(), remapper, t_tgt)
                edited = gen.synthesis_from_styles(styles, noise="fixed")
            loss = WEIGHTS["direction"] * losses.direction(edited, inversion, t_tgt, t_own,
                                                           active)
            if paired:
                loss = loss + paired * losses.keep(edited, pairs.target.images)
            elif (~active).any():
                loss = loss + losses.keep(edited[~active], b.images[~active])
            if stage == 1:
                loss = loss + WEIGHTS["reg"] * delta.square().sum(-1).mean()
                # the cycle: edit the edited image back with its own caption
                f1 = enc.features(edited)
                w1 = enc.map2style(*f1) + enc.latent_avg
                back = gen.synthesis(w1 + 0.1 * enc.map2style(*adapter(f1, t_own)),
                                     noise="fixed")
                loss = loss + WEIGHTS["cycle"] * losses.keep(back, b.images)
            else:
                # convs.k reads W+ row k + 1
                n = len(remapper.affine_mlps)
                moved = torch.stack([remapper.blend(k, w[:, k + 1], t_tgt) for k in range(n)], 1)
                base = w[:, 1:n + 1]
                loss = loss + WEIGHTS["reg"] * (moved - base).square().sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            opt.step()
            if step % 10 == 0:
                loop.show(loss=float(loss.detach()))
            if loop.should_save(step):
                ckpt.snapshot(parts, step + 1)
                # rows: input, the world's edit (the goal), inversion, CLIPInverter's edit
                save_grid([b.images[:8], pairs.target.images[:8], inversion[:8],
                           edited.detach()[:8]],
                          work / "samples" / f"clipinverter{stage}_{step + 1:06d}.png")
        if loop.stopped_early:
            return {**summary, "finished": False}
        ckpt.snapshot(parts, steps)  # the optimiser too, so more steps can follow later
        ckpt.mark_done({"stage": f"clipinverter{stage}", "steps": steps})
    gain, errors = calibrate_gain(gen, enc, clip, adapter, remapper, device, spec=spec,
                                  progress=progress)
    out = Path(pack.manifest.root) / "clipinverter.pt"
    save_clipinverter(adapter, remapper, out,
                      {"trained_on": pack.name, "weights": weights, GAIN_KEY: gain,
                       "gain_calibration": {"grid": list(GAIN_GRID), "val_l1": errors},
                       "substitutes": {"lpips": "pack encoder feature taps c1, c2",
                                       "id": "pack CLIP image embedding"}}, half=True)
    register_component(Path(pack.manifest.root), "clipinverter", out.name,
                       format="clipinverter")
    return {**summary, "finished": True, "file": str(out), "residual_gain": gain}


def extend_adapter(adapter_ckpt: Checkpoint, remapper_ckpt: Checkpoint, steps: int) -> bool:
    """Asked for more adapter steps than a finished run made: reopen stage 1 so that it goes
    on from its checkpoint (the cosine schedule picks up at its point of the longer run: a
    warm restart), and start the remapper over, since it was fitted to the old adapter.
    True when it did."""
    done = adapter_ckpt.done_steps()
    if done is None or steps <= done:
        return False
    adapter_ckpt.reopen()
    remapper_ckpt.discard()
    return True


@torch.no_grad()
def calibrate_gain(gen: Any, enc: Any, clip: Any, adapter: CLIPAdapter, remapper: CLIPRemapper,
                   device: torch.device, n_batches: int = 6, batch: int = 32,
                   grid: Sequence[float] = GAIN_GRID, spec: WorldSpec = WORLD_SPEC,
                   progress: bool = True) -> tuple[float, list[float]]:
    """``(gain, errors)``: the gain in ``grid`` whose edits come closest to the world's
    ground-truth edits, and each gain's error.

    The error is the mean absolute pixel difference over the source's and the goal's
    object coverage, on ``n_batches * batch`` frames of the ``val`` split that all ask for a
    change. Used as strength 1, the gain scales the residual and the remapper blend
    together, as ``strength`` does.

    The text is what the method is given by default: the goal described as "a <size>
    <color> <shape>" (``describe_region``: the selection as read, with the prompt's values),
    so the gain is calibrated for the conditioning it will meet.
    """
    source = FrameSource(spec, size=gen.size, hard_fraction=0.2, crop_fraction=0.0,
                         split="val")
    names = vocab(spec)
    totals = torch.zeros(len(grid), dtype=torch.float64)
    for step in tqdm(range(n_batches), desc="clipinverter gain", disable=not progress):
        pairs = source.pairs(step, batch, match_fraction=0.0).to(device)
        goals = [{key: names[key][int(i)] for key, i in zip(ATTR_KEYS, row, strict=True)}
                 for row in pairs.target.labels.tolist()]
        t_tgt = clip.encode_text([anchor_caption(goal) for goal in goals])
        c1, c2, c3 = enc.features(pairs.source.images)
        w = enc.map2style(c1, c2, c3) + enc.latent_avg
        delta = 0.1 * enc.map2style(*adapter((c1, c2, c3), t_tgt))
        region = ((pairs.source.masks + pairs.target.masks) > 0).float()
        for i, g in enumerate(grid):
            styles = remapped_styles(gen, w + g * delta, remapper, t_tgt, g)
            edited = gen.synthesis_from_styles(styles, noise="fixed")
            diff = (edited - pairs.target.images).abs() * region
            totals[i] += float(diff.sum() / (region.sum() * diff.shape[1]))
    errors = [round(float(e) / n_batches, 5) for e in totals]
    return float(grid[int(np.argmin(errors))]), errors
