"""Inverting the framed region into W+: the pack's e4e encoder, then a few Adam steps.

An encoder is fast but approximate: on the demo pack the e4e encoder alone gives back the
colour and background of every object, but the judge reads the right shape in only about half
of its inversions (stars and small triangles come back as rounded blobs). The generator can
draw them: optimising the encoder's W+ against the framed image for some tens of steps
recovers the shape (the hybrid "encoder, then optimisation" inversion of Image2StyleGAN, e4e
and PTI). Every method edits from this inversion, so the edit starts from the user's shape.

The number of steps and the learning rate belong to the pack (``"inversion"`` in its
manifest): they depend on how good its encoder is. A pack without the entry uses the encoder
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Inversion", "Refinement", "encode_w", "image_gradients", "invert",
           "reconstruction_loss", "refine_latents"]

#: on_step(done, total, render): refinement progress, with the render the step started from
StepFn = Callable[[int, int, Tensor], None]


@dataclass(frozen=True)
class Refinement:
    """How many Adam steps to spend on W+ after the encoder, and at what learning rate."""

    steps: int = 0
    lr: float = 0.02

    def __post_init__(self) -> None:
        if not 0 <= self.steps <= 2000:
            raise ValueError(f"inversion refine_steps must be in 0..2000, not {self.steps}")
        if not 0.0 < self.lr <= 1.0:
            raise ValueError(f"inversion refine_lr must be in (0, 1], not {self.lr}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Refinement:
        data = data or {}
        return cls(steps=int(data.get("refine_steps", 0)), lr=float(data.get("refine_lr", 0.02)))

    @classmethod
    def of_pack(cls, pack: Any) -> Refinement:
        """The pack manifest's ``"inversion"`` entry (none: the encoder alone)."""
        manifest = getattr(pack, "manifest", None)
        return cls.from_dict(manifest.data.get("inversion") if manifest is not None else None)


@dataclass
class Inversion:
    w: Tensor  # [B, n_latent, style_dim]: W+ (latent_avg included)
    styles: list[Tensor]  # the style-space vectors of w (detached)
    image: Tensor  # its render [B, 3, R, R]


def image_gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical differences of neighbouring pixels (what outlines are made of)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(y: Tensor, x: Tensor) -> Tensor:
    """Per image: L1 + L2 on pixels plus L1 between horizontal and vertical image gradients
    (the edge term keeps points and corners; pixels alone settle for a blob). Shape [B]."""
    d = y - x
    pix = (d.abs() + d.square()).flatten(1).mean(1)
    (hy, vy), (hx, vx) = image_gradients(y), image_gradients(x)
    return pix + (hy - hx).abs().flatten(1).mean(1) + (vy - vx).abs().flatten(1).mean(1)


def refine_latents(generator: torch.nn.Module, images: Tensor, w0: Tensor,
                   refinement: Refinement, on_step: StepFn | None = None,
                   check: Callable[[], None] | None = None) -> Tensor:
    """Adam on W+ from ``w0`` towards ``images`` (a batch: each image's loss is its own, so
    results do not depend on the batch). ``check`` is called before each step (cancel).
    The generator's weights are expected frozen (packs load them so)."""
    if refinement.steps == 0:
        return w0
    w = w0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=refinement.lr)
    with torch.enable_grad():
        for step in range(refinement.steps):
            if check is not None:
                check()
            y = generator.synthesis(w, noise="fixed")
            loss = reconstruction_loss(y, images).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1, refinement.steps, y.detach())
    return w.detach()


@torch.no_grad()
def encode_w(encoder: torch.nn.Module, image: Tensor) -> Tensor:
    """The encoder's W+ of ``image``, ``latent_avg`` included (official e4e outputs the
    offset from it)."""
    return encoder(image) + encoder.latent_avg


def invert(generator: torch.nn.Module, encoder: torch.nn.Module, image: Tensor,
           refinement: Refinement = Refinement(), on_step: StepFn | None = None,
           check: Callable[[], None] | None = None, w0: Tensor | None = None) -> Inversion:
    """The encoder's W+ of ``image`` (``w0`` when the caller already encoded it, latent_avg
    included), refined for ``refinement.steps``, and its render."""
    if w0 is None:
        w0 = encode_w(encoder, image)
    w = refine_latents(generator, image, w0, refinement, on_step, check)
    with torch.no_grad():
        styles = [s.detach() for s in generator.styles(w)]
        render = generator.synthesis_from_styles(styles, noise="fixed")
    return Inversion(w, styles, render)
