"""``paint-by-word``: masked latent CLIP optimisation (Paint by Word, Bau et al. 2021).

1. Invert the framed region (the pack's e4e encoder, refined as its manifest says:
   :mod:`.inversion`): ``w0`` (W+) and its styles, the *fixed* styles. The optimisation
   starts from ``w0`` (the paper) or, ``start`` auto on a pack that ships CLIPInverter,
   from CLIPInverter's one-pass edit of it (:mod:`.start`): it then refines an edit that
   already lies on the generator's images instead of searching for one.
2. At every generator layer the modulation becomes ``style * m + fixed_style * (1 - m)``,
   ``m`` the selection at that layer's resolution, blurred above 16 px with sigma = res / 16
   (:class:`engine.models.stylegan2.SpatialStyleMix`, demodulation from the fixed style as in
   the reference code). Only the selected part of the image can follow the latent.
3. Adam minimises ``1 - cos(CLIP(view), target)`` averaged over random augmented views
   (:func:`engine.augment.clip_views`: a tiny CLIP is easy to fool with one view), a
   preservation loss against the unedited inversion outside the dilated selection (pixels,
   and the encoder's first feature tap: a network of the pack, never its judge), and an L2
   pull towards the start. What moves (``space``) is one offset shared by every W+ row
   (default: the rows keep their differences as the inversion found them, and the demo
   pack's generator smears less) or every row on its own (``w+``). The target is the
   prompt's CLIP text embedding (averaged, with ``keep_unnamed``, with the prompt
   completed by what the region shows for the attributes it does not name:
   :func:`.guidance.anchored_prompt`) or, with a reference image, its CLIP image embedding.
4. ``strength`` s renders ``w0 + s (w - w0)``. The seed jitters the start inside the mask, so
   variations differ; a given seed always gives the same result.
5. ``project`` (auto: shape and size changes from the inversion) renders the edit
   re-encoded by the pack's encoder (:func:`.guidance.project_edit`), so a latent that CLIP
   guidance led off the generator's images comes back as an object of the world rather than
   a smear.

The reference implementation optimises one w with CMA-ES; Adam reaches the target in far
fewer renders, which is what makes an interactive edit on a CPU possible.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from engine.models.stylegan2 import SpatialStyleMix

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

__all__ = ["PaintByWord"]

@register
class PaintByWord(EditMethod):
    id = "paint-by-word"
    title = "Paint by Word"
    description = ("Masked latent CLIP optimisation: only the selected part of the latent "
                   "moves towards the text (or a reference image).")
    params: ClassVar[tuple[Param, ...]] = (
        Param("steps", "int", 40, 1, 500, help="optimisation steps"),
        Param("lr", "float", 0.03, 0.001, 0.5, help="Adam learning rate over W+"),
        Param("strength", "float", 1.0, 0.0, 2.0,
              help="how far to go along the found change (0 = the inversion)"),
        Param("views", "int", 6, 1, 32, help="augmented CLIP views per step"),
        Param("preserve", "float", 2.0, 0.0, 100.0,
              help="weight of keeping the image outside the selection"),
        Param("l2", "float", 0.002, 0.0, 10.0,
              help="weight of the pull towards the start (see start: CLIPInverter's edit "
                   "or the inversion)"),
        Param("jitter", "float", 0.05, 0.0, 1.0,
              help="seeded noise on the start latent (makes variations differ)"),
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
        mix = SpatialStyleMix.from_mask(inv.styles, mask, gen.size)
        keep = Keep(pack.get("encoder"), inv.image, mask)

        offset = start.offset(str(p["space"]), float(p["jitter"]), rng).requires_grad_(True)
        opt = torch.optim.Adam([offset], lr=float(p["lr"]))
        preview_every = int(p["preview_every"])
        loss_clip = torch.tensor(0.0)
        stages.step(0, f"{start.described}; editing towards {target_text}", start.image[0])
        for step in range(steps):
            cancel.check()
            w = start.w + offset
            image = gen.synthesis_from_styles(start.styles(w), noise="fixed", style_mix=mix)
            loss_clip = clip_loss(clip, image, target, int(p["views"]), rng)
            loss = (loss_clip + float(p["preserve"]) * keep(image)
                    + float(p["l2"]) * (w - start.w).square().sum(-1).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            preview = image[0].detach() if (step + 1) % preview_every == 0 else None
            message = f"step {step + 1}/{steps}: clip {float(loss_clip.detach()):.3f}"
            stages.step(step + 1, message, preview)
        cancel.check()
        with torch.no_grad():
            edited = gen.synthesis_from_styles(
                start.result_styles(offset.detach(), float(p["strength"])), noise="fixed",
                style_mix=mix)
        return optimised_output(inputs, read, inv, edited, target, start.from_edit)
