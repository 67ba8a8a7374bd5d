"""``global-directions``: StyleCLIP global directions (Patashnik et al. 2021, §6),
region-aware.

The edit's CLIP direction is ``E(target) - E(neutral)``. The user may write both:
``"neutral -> target"`` ("a red star -> a blue star"). Otherwise, with
``neutral_from_region`` on (the default), the pack's CLIP reads the selection's size,
colour and shape, and the two texts are that description and the same with the prompt's
values ("a large orange star -> a large blue star"): they differ only in the edit, as the
paper advises (:func:`.guidance.described_change`). Off, or for a prompt naming none of
the pack's words, the neutral text is the pack's (``neutral_prompt`` in its manifest, e.g.
"a shape"). The direction is turned into a style-space direction with the pack's
precomputed channel relevances (``wordbrush precompute global-directions``) and applied
inside the selection only. One render: instant.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from . import register
from .base import (
    CancelFlag,
    EditMethod,
    InputRejected,
    MethodInputs,
    MethodOutput,
    Param,
    ProgressFn,
)
from .directions import (
    ALPHA,
    AUTO_ALPHA,
    BETA,
    DIRECTIONS_KEEP,
    STRENGTH,
    StyleDirections,
    edit_along,
)
from .guidance import (
    framed_inputs,
    invert_region,
    keep_unnamed_param,
    refine_param,
    region_captions,
    region_reader,
    similarity_info,
)

__all__ = ["GlobalDirections", "split_prompt"]

DEFAULT_NEUTRAL = "a photo"


def split_prompt(prompt: str, neutral: str) -> tuple[str, str]:
    """``(neutral, target)``: "a -> b" gives ("a", "b"); otherwise the pack's neutral."""
    if "->" in prompt:
        left, right = (part.strip() for part in prompt.split("->", 1))
        if not left or not right:
            raise InputRejected('write "neutral -> target" with text on both sides')
        return left, right
    return neutral, prompt.strip()


@register
class GlobalDirections(EditMethod):
    id = "global-directions"
    title = "StyleCLIP global directions"
    description = ('A style-space direction from "neutral -> target" text (or the pack\'s '
                   "neutral text), applied inside the selection in one render.")
    params: ClassVar[tuple[Param, ...]] = (
        ALPHA, BETA, STRENGTH, refine_param(False),
        Param("neutral_from_region", "bool", True,
              help="neutral text = the selection as the pack's CLIP reads it, target = the "
                   "same with the prompt's words (off: the pack's neutral text)",
              reads_vocabulary=True),
        keep_unnamed_param(DIRECTIONS_KEEP),
        AUTO_ALPHA,
    )
    needs = ("generator", "encoder", "clip", "global_directions")
    seeded = False  # one direction, a fixed ladder
    one_pass = True

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        p = inputs.params
        pack = inputs.pack
        gen, clip = pack.get("generator"), pack.get("clip")
        directions = StyleDirections.from_artefact(pack.get("global_directions"), inputs.device)
        manifest = getattr(pack, "manifest", None)
        neutral_default = (manifest.data.get("neutral_prompt") if manifest else None) \
            or DEFAULT_NEUTRAL
        x, mask = framed_inputs(inputs, gen.size)
        read = region_reader(clip, x)
        captions = None
        if "->" not in inputs.prompt and p["neutral_from_region"]:
            captions = region_captions(inputs.prompt, pack, read)
        neutral, target_text = captions or split_prompt(inputs.prompt, neutral_default)
        inv, stages = invert_region(inputs, x, progress, cancel, 2)
        cancel.check()
        with torch.no_grad():
            target = clip.encode_prompt(target_text).to(inputs.device)
            direction = target - clip.encode_prompt(neutral).to(inputs.device)
        edit = edit_along(inputs, x, mask, inv, read, directions, direction, target_text,
                          texts_from_region=captions is not None, check=cancel.check)
        stages.step(2, f"{edit.channels_moved} style channels moved by α {edit.alpha:g} "
                       f"({neutral!r} -> {target_text!r})", edit.image[0])
        cancel.check()
        info = similarity_info(clip, inv.image, edit.image, target)
        info.update({"neutral": neutral, "target": target_text, **edit.info()})
        return MethodOutput(image=edit.image, inversion=inv.image, paste=edit.paste, info=info)
