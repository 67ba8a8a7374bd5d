"""Style-space directions from CLIP-space directions (StyleCLIP global directions, §6), shared
by ``global-directions`` and ``feu``.

The pack's ``global_directions`` artefact holds, for every style channel of the
generator's convolutions (ToRGB layers excluded, as in StyleCLIP), the CLIP-space effect of
moving that channel by ±``alpha_probe`` standard deviations (``fs3``, unit rows), and the
channels' standard deviations. A CLIP direction ``d`` becomes the style direction
``fs3 · d``, zeroed where its magnitude is below ``beta`` (disentanglement), divided by its
largest magnitude, and applied as ``s += alpha * std * direction``, inside the selection only
(:class:`SpatialStyleMix`). With ``auto_alpha`` (on by default), where the pack's CLIP does
not read the pasted edit as asked, the steps nearest α are tried and the first that reads so
is kept (:func:`.guidance.step_read_as_asked`): a fixed α carries some recolours past the
asked hue and stops some size changes short.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from engine.models.stylegan2 import SpatialStyleMix

from .base import MethodInputs, Param
from .guidance import (
    EditCheck,
    Inversion,
    ReadFn,
    advise_paste,
    auto_step_param,
    ladder_batch,
    step_read_as_asked,
    unnamed_directions,
)

__all__ = ["ALPHA", "AUTO_ALPHA", "BETA", "DIRECTIONS_KEEP", "STRENGTH", "DirectionEdit",
           "StyleDirections", "apply_direction", "edit_along"]

ALPHA = Param("alpha", "float", 4.0, -20.0, 20.0, help="step along the direction (α)")
BETA = Param("beta", "float", 0.12, 0.0, 0.5,
             help="disentanglement threshold (β): channels less relevant stay put")
#: ``keep_unnamed``'s help for the direction methods (:meth:`StyleDirections.style_direction`)
DIRECTIONS_KEEP = ("keep what the prompt does not name: the style direction is made "
                   "orthogonal to the directions that would change the region's other "
                   "colour, shape or size (with the texts written from the region: "
                   "neutral_from_region, contrast_region)")
STRENGTH = Param("strength", "float", 1.0, 0.0, 2.0, help="multiplies α")
AUTO_ALPHA = auto_step_param("auto_alpha", "α", ("alpha", "strength"))


@dataclass
class StyleDirections:
    fs3: Tensor  # [C, embed_dim] unit rows
    layers: Tensor  # [C] style-layer index of each channel
    channels: Tensor  # [C] channel index within its layer
    std: Tensor  # [C] the channel's standard deviation over mapped samples

    @classmethod
    def from_artefact(cls, data: dict[str, Any], device: Any) -> StyleDirections:
        return cls(data["fs3"].float().to(device), data["layers"].long().to(device),
                   data["channels"].long().to(device), data["std"].float().to(device))

    def style_direction(self, clip_direction: Tensor, beta: float,
                        keep: Tensor | None = None) -> tuple[Tensor, int]:
        """``[C]`` channel weights in [-1, 1], and how many channels survive ``beta``.

        ``keep`` (``[K, embed_dim]``, CLIP directions of changes not asked for): the weights
        are made orthogonal to each one's style direction, so that, to first order, the
        edit's CLIP effect ``fs3^T w`` has no component along them (InterFaceGAN's
        conditional manipulation, Shen et al. 2020, in StyleCLIP's channel space)."""
        d = clip_direction / clip_direction.norm().clamp_min(1e-8)
        relevance = self.fs3 @ d
        if keep is not None and len(keep):
            basis = torch.linalg.qr(self.fs3 @ keep.T.to(self.fs3)).Q
            relevance = relevance - basis @ (basis.T @ relevance)
        relevance = torch.where(relevance.abs() >= beta, relevance, torch.zeros_like(relevance))
        peak = relevance.abs().max()
        kept = int((relevance != 0).sum())
        return (relevance / peak if peak > 0 else relevance), kept


def apply_direction(generator: torch.nn.Module, styles: list[Tensor], mask: Tensor,
                    directions: StyleDirections, weights: Tensor,
                    alphas: float | list[float]) -> Tensor:
    """Render ``styles`` moved by ``alpha * std * weights`` inside ``mask`` only, one image
    for each of ``alphas``."""
    alpha = torch.as_tensor(alphas, dtype=styles[0].dtype, device=styles[0].device)
    alpha = alpha.reshape(-1, 1)
    moved = [s.expand(len(alpha), -1).clone() for s in styles]
    delta = alpha * (directions.std * weights).to(alpha)
    for layer in directions.layers.unique().tolist():
        pick = directions.layers == layer
        moved[layer][:, directions.channels[pick]] += delta[:, pick]
    mix = SpatialStyleMix.from_mask(styles, mask, generator.size)
    return generator.synthesis_from_styles(moved, noise="fixed", style_mix=mix)


@dataclass
class DirectionEdit:
    """A direction method's render, how it is to be pasted, and what it did."""

    image: Tensor
    paste: str
    alpha: float  # the step used (α x strength, or the ladder's)
    channels_moved: int
    changes_kept_out: int
    read_as_asked: bool | None = None  # the auto_alpha check's verdict (None: not checked)

    def info(self) -> dict[str, Any]:
        out = {"channels_moved": self.channels_moved,
               "changes_kept_out": self.changes_kept_out, "alpha": self.alpha}
        if self.read_as_asked is not None:
            out["read_as_asked"] = self.read_as_asked
        return out


@torch.no_grad()
def edit_along(inputs: MethodInputs, x: Tensor, mask: Tensor, inv: Inversion, read: ReadFn,
               directions: StyleDirections, clip_direction: Tensor, asked: str,
               texts_from_region: bool, check: Callable[[], None]) -> DirectionEdit:
    """The framed region ``x`` (inverted: ``inv``) edited along the style direction of
    ``clip_direction``, for the text ``asked``.

    With ``keep_unnamed`` and texts written from the region (``texts_from_region``), the
    changes the prompt does not name are kept out of the direction; the paste is
    :func:`.guidance.advise_paste`'s for ``asked``; the step is the parameters' α x
    strength or, with ``auto_alpha``, the nearest one whose pasted edit the pack's CLIP
    reads as ``asked``. ``check`` is the job's cancel check."""
    pack, p = inputs.pack, inputs.params
    gen, clip = pack.get("generator"), pack.get("clip")
    keep = (unnamed_directions(clip, inputs.prompt, pack, read, inputs.device)
            if texts_from_region and p["keep_unnamed"] else None)
    weights, kept = directions.style_direction(clip_direction, float(p["beta"]), keep)
    paste = advise_paste(asked, pack, read, recolour="colour",
                         by_reference=inputs.reference is not None)
    step = float(p["alpha"]) * float(p["strength"])
    done = None
    if p.get("auto_alpha") and step != 0 and inputs.reference is None:  # it reads words
        done = EditCheck(asked, pack, read, clip, x, inv.image, mask,
                         inputs.pasted_as(paste)).or_none()

    def render(alphas: list[float]) -> Tensor:
        return apply_direction(gen, inv.styles, mask, directions, weights, alphas)

    batch = ladder_batch(gen.synthesis_macs(), inputs.device)
    image, alpha, as_asked = step_read_as_asked(render, step, done, batch, check)
    return DirectionEdit(image, paste, alpha, kept, 0 if keep is None else len(keep),
                         as_asked)
