"""Stage ``mapping``: fit the generator's mapping network so that random z gives the world.

The autoencoder fixed the synthesis network and where the encoder puts each frame in W.
Here the mapping network (z -> w, rosinality's ``style.*``) is trained as the generator of
a small GAN in W: a discriminator on 128-d vectors tells encoded w of rendered frames from
mapped z. It is fast (vectors, not images) and needs no judge: mode coverage is checked
by ``wordbrush eval pack`` afterwards, with the judge, on rendered samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.training.autoencoder import build_models
from engine.training.common import Checkpoint, StepLoop, cosine_lr, save_grid, seed_everything
from engine.training.data import FrameSource
from engine.world import WORLD_SPEC, WorldSpec

__all__ = ["encode_world", "train_mapping"]

STAGE = "mapping"


class LatentDiscriminator(nn.Module):
    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, w: Tensor) -> Tensor:
        return self.net(w).squeeze(-1)


@torch.no_grad()
def encode_world(encoder: nn.Module, n: int, spec: WorldSpec, progress: bool = True,
                 batch: int = 256) -> Tensor:
    """First W+ row of ``n`` encoded renderer frames (the world's distribution in W)."""
    from tqdm import tqdm

    source = FrameSource(spec, hard_fraction=0.0, crop_fraction=0.0, seed_offset=40_000_000)
    out = []
    for i in tqdm(range(0, n, batch), desc="encode world", disable=not progress):
        b = source.batch(i // batch, min(batch, n - i))
        out.append(encoder(b.images)[:, 0].float())
    return torch.cat(out)


def train_mapping(
    work: Path,
    device: torch.device,
    steps: int = 4000,
    batch: int = 512,
    n_real: int = 30_000,
    seed: int = 4,
    budget_s: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume); writes ``work/mapping.pt`` (the ``style.*`` state dict)."""
    ckpt = Checkpoint(work, STAGE)
    gen = seed_everything(seed)
    generator, encoder = build_models()
    ae = torch.load(work / "autoencoder.pt", map_location="cpu", weights_only=True)
    generator.load_state_dict(ae["generator"])
    encoder.load_state_dict(ae["encoder"])
    encoder.eval()
    real_path = work / "mapping_real_w.pt"
    if real_path.is_file():
        real = torch.load(real_path, weights_only=True)
    else:
        real = encode_world(encoder, n_real, spec, progress)
        torch.save(real, real_path)
    real = real.to(device)
    mapping = generator.style.to(device).train()
    disc = LatentDiscriminator(real.shape[1]).to(device)
    # the mapping's weights are stored divided by lr_mul = 0.01, so its Adam steps are 100x
    # larger in stored units to move at the discriminator's pace
    opt_g = torch.optim.Adam(mapping.parameters(), lr=0.05, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=5e-4, betas=(0.5, 0.99))
    parts = {"mapping": mapping, "disc": disc, "opt_g": opt_g, "opt_d": opt_d}
    start = ckpt.resume(parts, gen)
    mean, std = real.mean(0), real.std(0)
    loop = StepLoop(steps, start, desc="mapping", budget_s=budget_s, disable=not progress)
    dim = real.shape[1]
    moments = torch.tensor(float("nan"))
    for step in loop:
        lr_scale = cosine_lr(step, steps, 1.0, warmup=100, floor=0.1)
        for g in opt_g.param_groups:
            g["lr"] = 0.05 * lr_scale
        for g in opt_d.param_groups:
            g["lr"] = 5e-4 * lr_scale
        idx = torch.randint(len(real), (batch,), generator=gen).to(device)
        w_real = real[idx].requires_grad_(True)
        z = torch.randn(batch, dim, generator=gen).to(device)
        w_fake = mapping(z)
        d_real = disc(w_real)
        d_fake = disc(w_fake.detach())
        (r1,) = torch.autograd.grad(d_real.sum(), w_real, create_graph=True)
        r1_penalty = r1.square().sum(1).mean()
        loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean() + 5.0 * r1_penalty
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        d_fake = disc(w_fake)
        # moment matching keeps the early GAN steps in the right region of W
        moments = ((w_fake.mean(0) - mean) / std).square().mean() + (
            (w_fake.std(0) - std) / std).square().mean()
        loss_g = F.softplus(-d_fake).mean() + moments
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % 20 == 0:
            loop.show(d=float(loss_d.detach()), g=float(loss_g.detach()),
                      mom=float(moments.detach()))
        if loop.should_save(step):
            ckpt.snapshot(parts, step + 1, gen)
    if loop.stopped_early:
        return {"stage": STAGE, "finished": False}
    mapping.eval()
    generator.to(device).eval()
    with torch.no_grad():
        z = torch.randn(32, dim, generator=torch.Generator().manual_seed(0)).to(device)
        images = generator.synthesis(mapping(z), noise="fixed")
    save_grid([images[:16], images[16:]], work / "samples" / "mapping_samples.png")
    torch.save({k: v.detach().cpu() for k, v in mapping.state_dict().items()},
               work / "mapping.pt")
    summary = {"stage": STAGE, "finished": True, "steps": steps,
               "moment_error": float(moments.detach())}
    ckpt.mark_done(summary)
    return summary
