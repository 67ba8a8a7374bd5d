"""Stage ``autoencoder``: the pack's StyleGAN2 synthesis network and its e4e encoder,
trained together to reconstruct the world's frames through W+.

Why an autoencoder first: a GAN from scratch is slow on two cores, while an autoencoder
learns the synthesis network in an hour; sampling from random z comes afterwards, from a
mapping network fitted to the encoder's w (stage ``mapping``). That only works if one w,
repeated on every layer (what the mapping produces), renders the world. A first run with
free W+ rows and only a weak delta penalty did not: colour and shape lived in the rows'
differences, and a broadcast first row rendered a grey blob. So, as in e4e's progressive
training, the first part of the schedule trains with one w for all layers, and the deltas
of rows 1..n-1 are then unlocked one after the other (each ramped in from zero) under the
delta penalty, to sharpen inversions without moving them off the single-w images.

Losses: L1 + L2 with the object (and its edge) weighted 5x, L1 between image gradients
(edges: what keeps stars and triangles from becoming blobs), L1 at 1/2 and 1/4 scale, and
the e4e delta norm. Adam 1e-3 (beta 0.9, 0.99), gradient clipping 1.0, cosine decay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.methods.inversion import image_gradients
from engine.models.e4e import E4EConfig, Encoder4Editing
from engine.models.stylegan2 import Generator
from engine.training.common import Checkpoint, StepLoop, cosine_lr, save_grid, seed_everything
from engine.training.data import Batch, FrameSource, scene_crop_pool
from engine.world import WORLD_SPEC, WorldSpec, render_batch, split_seed

__all__ = ["GENERATOR_ARCH", "build_models", "encoder_config", "train_autoencoder"]

STAGE = "autoencoder"

#: The demo pack's generator (rosinality layout, small widths): 0.95 M parameters.
GENERATOR_ARCH: dict[str, Any] = {
    "size": 64,
    "style_dim": 128,
    "n_mlp": 4,
    "channels": {4: 128, 8: 128, 16: 96, 32: 48, 64: 24},
}


def encoder_config() -> E4EConfig:
    """The demo pack's e4e encoder (IR backbone, 10 styles of 128): 2.2 M parameters."""
    return E4EConfig.small(input_size=64, n_styles=10, style_dim=128, mode="ir")


def build_models() -> tuple[Generator, Encoder4Editing]:
    return Generator(**GENERATOR_ARCH), Encoder4Editing(encoder_config())


def reconstruction_loss(y: Tensor, x: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, float]]:
    """The pixel, edge and multi-scale terms (see the module docstring)."""
    weight = 1.0 + 4.0 * F.max_pool2d(mask, 5, 1, 2)
    diff = y - x
    pix = (weight * (diff.abs() + diff.square())).mean() / weight.mean()
    gy, gx = image_gradients(y)
    ty, tx = image_gradients(x)
    edge = (gy - ty).abs().mean() + (gx - tx).abs().mean()
    multi = sum(
        (F.avg_pool2d(y, k) - F.avg_pool2d(x, k)).abs().mean() for k in (2, 4)
    )
    total = pix + edge + multi
    return total, {"pix": float(pix.detach()), "edge": float(edge.detach())}


def delta_ramp(step: int, steps: int, n_rows: int, single_w_until: float = 0.6,
               all_by: float = 0.9) -> Tensor:
    """Per-row factor on the deltas (row 0 has none): 0 until ``single_w_until`` of the
    schedule, then rows 1..n-1 ramp from 0 to 1 one after the other, all open by ``all_by``."""
    t = step / max(steps, 1)
    span = (all_by - single_w_until) / max(n_rows - 1, 1)
    starts = single_w_until + span * torch.arange(-1, n_rows - 1, dtype=torch.float32)
    ramp = ((t - starts) / span).clamp(0.0, 1.0)
    ramp[0] = 0.0
    return ramp


def apply_ramp(w: Tensor, ramp: Tensor) -> Tensor:
    """Scale each row's offset from row 0 by ``ramp``."""
    return w[:, :1] + ramp.to(w)[None, :, None] * (w - w[:, :1])


def delta_norm(w: Tensor) -> Tensor:
    """e4e's delta regularisation: mean L2 norm of each row's offset from the first row."""
    return (w[:, 1:] - w[:, :1]).norm(dim=-1).mean()


def _val_batch(spec: WorldSpec, n: int = 16) -> Tensor:
    """Fixed held-out images for the sample grids: rendered val frames and val scene crops."""
    imgs, _, _ = render_batch(n // 2, split_seed("val", 7), size=spec.frame_size, spec=spec)
    from engine.training.data import to_tensor

    crops = scene_crop_pool(n - n // 2, split="val", first_index=50, progress=False, spec=spec)
    return torch.cat([to_tensor(imgs), crops.images])


def train_autoencoder(
    work: Path,
    device: torch.device,
    steps: int = 5400,
    batch: int = 32,
    lr: float = 1e-3,
    delta_lambda: float = 0.05,
    seed: int = 3,
    budget_s: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
    n_crops: int = 4000,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume); writes ``work/autoencoder.pt`` (generator + encoder state dicts)."""
    ckpt = Checkpoint(work, STAGE)
    gen = seed_everything(seed)
    generator, encoder = build_models()
    generator.to(device).train()
    encoder.to(device).train()
    params = [p for n, p in generator.named_parameters() if not n.startswith("style.")]
    params += list(encoder.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    parts = {"generator": generator, "encoder": encoder, "opt": opt}
    start = ckpt.resume(parts, gen)
    crops = scene_crop_pool(n_crops, first_index=400_000, cache=work / "ae_crops.npz",
                            progress=progress, spec=spec)
    source = FrameSource(spec, crops=crops, hard_fraction=0.2, crop_fraction=0.2,
                         seed_offset=30_000_000)
    val = _val_batch(spec).to(device)
    samples = work / "samples"
    loop = StepLoop(steps, start, desc="autoencoder", budget_s=budget_s, disable=not progress)
    stats: dict[str, float] = {}
    for step in loop:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=200, floor=0.03)
        b: Batch = source.batch(step, batch).to(device)
        ramp = delta_ramp(step, steps, encoder.n_styles)
        opened = torch.nonzero(ramp).flatten()
        encoder.progressive_stage = int(opened[-1]) if len(opened) else 0
        w = apply_ramp(encoder(b.images), ramp)
        y = generator.synthesis(w, noise="fixed")
        rec, stats = reconstruction_loss(y, b.images, b.masks)
        dn = delta_norm(w)
        loss = rec + delta_lambda * dn
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 10 == 0:
            with torch.no_grad():
                psnr = float(10 * torch.log10(4.0 / (y - b.images).square().mean()))
            loop.show(psnr=psnr, delta=float(dn.detach()), rows=len(opened), **stats)
        if loop.should_save(step):
            ckpt.snapshot(parts, step + 1, gen)
            encoder.eval()
            with torch.no_grad():
                w_val = apply_ramp(encoder(val), ramp)
                single = w_val[:, :1].expand_as(w_val)
                save_grid([val, generator.synthesis(w_val, noise="fixed"),
                           generator.synthesis(single, noise="fixed")],
                          samples / f"autoencoder_{step + 1:06d}.png")
            encoder.train()
    encoder.progressive_stage = None
    if loop.stopped_early:
        return {"stage": STAGE, "finished": False}
    torch.save({"generator": generator.state_dict(), "encoder": encoder.state_dict()},
               work / "autoencoder.pt")
    summary = {"stage": STAGE, "finished": True, "steps": steps, **stats}
    ckpt.mark_done(summary)
    return summary
