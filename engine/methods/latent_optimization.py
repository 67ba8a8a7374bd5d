"""``latent-optimization``: StyleCLIP's latent optimisation (Patashnik et al. 2021, §4),
region-aware.

Starting from the e4e inversion ``w0`` of the framed region (or, ``start`` auto on a pack
that ships CLIPInverter, from CLIPInverter's one-pass edit of it: :mod:`.start`), Adam
minimises the CLIP loss (augmented views, :func:`guidance.clip_loss`) plus ``l2 * ||w -
start||²``, with StyleCLIP's learning-rate schedule (a cosine ramp-down over the last
quarter and a short ramp-up; each step takes the rate at its middle). What moves
(``space``) is one offset shared by every W+ row (default) or every row on its own
(``w+``, the paper's). Unlike ``paint-by-word``, the latent moves everywhere (no masked
styles): the selection acts through a preservation loss outside it and through the
paste-back, whose alpha is the selection. Defaults are StyleCLIP's shape
(lr 0.1, l2 0.008) scaled to the demo pack's 64-px generator and an interactive step
budget.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from . import register
from .base import CancelFlag, EditMethod, MethodInputs, MethodOutput, Param, ProgressFn
from .guidance import (
    Keep,
    clip_loss,
    clip_target,
    framed_inputs,
    keep_unnamed_param,
    optimised_output,
    project_param,
    reference_weight_param,
    refine_param,
    region_reader,
)
from .start import optimisation_start, space_param, start_param

__all__ = ["LatentOptimization", "styleclip_lr"]


def styleclip_lr(t: float, base: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """StyleCLIP's ``get_lr``: ramp up over the first ``rampup``, cosine down over the last
    ``rampdown`` of the run (``t`` in [0, 1])."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / rampup)


@register
class LatentOptimization(EditMethod):
    id = "latent-optimization"
    title = "StyleCLIP latent optimisation"
    description = ("Optimise the whole latent towards the text with an L2 pull to the "
                   "inversion; the selection limits the change through a preservation "
                   "loss and the paste-back.")
    params: ClassVar[tuple[Param, ...]] = (
        Param("steps", "int", 40, 1, 500, help="optimisation steps"),
        Param("lr", "float", 0.05, 0.001, 1.0, help="peak Adam learning rate over W+"),
        Param("l2", "float", 0.008, 0.0, 10.0,
              help="weight of ||w - start||² (StyleCLIP's, with its w0 the start: see start)"),
        Param("preserve", "float", 1.0, 0.0, 100.0,
              help="weight of keeping the image outside the selection"),
        Param("views", "int", 6, 1, 32, help="augmented CLIP views per step"),
        Param("strength", "float", 1.0, 0.0, 2.0, help="how far along the found change"),
        Param("jitter", "float", 0.05, 0.0, 1.0, help="seeded noise on the start latent"),
        Param("preview_every", "int", 5, 1, 100, help="send a preview every N steps"),
        refine_param(True),
        keep_unnamed_param(),
        project_param(),
        start_param(),
        space_param("w"),
        reference_weight_param(),
    )
    needs = ("generator", "encoder", "clip")
    uses = ("clipinverter",)  # the ``start`` parameter's edit, where the pack has it
    accepts_reference = True

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        p = inputs.params
        pack = inputs.pack
        gen, clip = pack.get("generator"), pack.get("clip")
        rng = torch.Generator().manual_seed(int(inputs.seed))
        steps = int(p["steps"])
        x, mask = framed_inputs(inputs, gen.size)
        read = region_reader(clip, x)
        start = optimisation_start(inputs, x, mask, read, progress, cancel, steps)
        inv, stages = start.inversion, start.stages
        target, target_text = clip_target(clip, inputs, read)
        keep = Keep(pack.get("encoder"), inv.image, mask)
        offset = start.offset(str(p["space"]), float(p["jitter"]), rng).requires_grad_(True)
        opt = torch.optim.Adam([offset], lr=float(p["lr"]))
        stages.step(0, f"{start.described}; editing towards {target_text}", start.image[0])
        for step in range(steps):
            cancel.check()
            for g in opt.param_groups:
                # the step's middle: at its end the last step's rate is 0 (and one step
                # does nothing); StyleCLIP's start wastes the first step the same way
                g["lr"] = styleclip_lr((step + 0.5) / steps, float(p["lr"]))
            w = start.w + offset
            image = gen.synthesis_from_styles(start.styles(w), noise="fixed")
            loss_clip = clip_loss(clip, image, target, int(p["views"]), rng)
            loss = (loss_clip + float(p["l2"]) * (w - start.w).square().sum(-1).mean()
                    + float(p["preserve"]) * keep(image))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            preview = image[0].detach() if (step + 1) % int(p["preview_every"]) == 0 else None
            stages.step(step + 1, f"step {step + 1}/{steps}: clip "
                        f"{float(loss_clip.detach()):.3f}", preview)
        cancel.check()
        with torch.no_grad():
            edited = gen.synthesis_from_styles(
                start.result_styles(offset.detach(), float(p["strength"])), noise="fixed")
        return optimised_output(inputs, read, inv, edited, target, start.from_edit)
