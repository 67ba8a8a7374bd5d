"""``clipinverter``: CLIP-guided StyleGAN inversion (Baykal et al., ``shared/papers/004``).

One forward pass: the e4e features of the framed region are modulated by the CLIPAdapter
with the text's CLIP embedding (or a reference image's: paper fig. 8), mapped to a W+
residual (``0.1 * map2style``) and added to the unconditional inversion (the pack's: the
encoder's W+, refined when the manifest asks for it, see :mod:`.inversion`); the CLIPRemapper
then pulls each upsampling conv's w towards the text. ``strength`` walks along the residual
and the remapper blend together (paper fig. 7: 0 = the inversion); strength 1 is the file's
``residual_gain`` (calibrated by training against ground-truth edits, 1.0 for official
files), because a residual trained under latent regularisation stops short of the edit.
The render is applied inside the selection only (style mixing with the inversion's styles),
so like the other methods it is region-aware before the paste-back.

The text (``describe_region``, on by default): with the pack's vocabulary, the pack's CLIP
reads the selection and the prompt's values replace what it names, written the way the
pack's captions are ("a blue star" on a large orange star -> "a large blue star"). The
adapter was trained on the pack's caption templates and a tiny CLIP embeds other phrasings
("an image showing a blue star") poorly; the full description also tells the adapter what
to keep. Edits that reach the asked value and keep the rest rose on held-out scenes, while
fewer edits reach it at all (BENCHMARKS.md, session 11). A prompt naming none of the pack's
words, or off, is used as typed.

The step (``auto_strength``, on by default): where the pack's CLIP does not read the asked
values on the edit as it will be pasted, strength x 1.5, 2 and 3 are tried and the first
that reads as asked is kept (:func:`.guidance.stronger_until_read`); a residual trained
under latent regularisation stops short of a new shape more often than of a new colour.

The remapper follows the official code (``w (1 - 0.9 lambda) + 0.9 lambda mlp(t)``), not the
paper's eq. 6 (a residual blend rescaled to ||dw||): official checkpoints hold the code's
parameters. One pass is deterministic, so variations of one prompt are the same edit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from engine.models.clipinverter import (
    CLIPInverterNets,
    adapter_residual,
    level_channels,
    load_clipinverter,
    remapped_styles,
)
from engine.models.stylegan2 import SpatialStyleMix

from . import register
from .base import CancelFlag, EditMethod, MethodInputs, MethodOutput, Param, ProgressFn
from .guidance import (
    EditCheck,
    advise_paste,
    clip_target,
    framed_inputs,
    invert_region,
    refine_param,
    region_captions,
    region_reader,
    similarity_info,
    stronger_until_read,
)

__all__ = ["ClipInverter"]


@register
class ClipInverter(EditMethod):
    id = "clipinverter"
    title = "CLIPInverter"
    description = ("One pass: the inversion is conditioned on the text (CLIPAdapter) and "
                   "refined (CLIPRemapper); instant, trained for the pack.")
    params: ClassVar[tuple[Param, ...]] = (
        Param("strength", "float", 1.0, 0.0, 2.0,
              help="how far along the text-conditioned residual (0 = the inversion)"),
        Param("remap", "float", 1.0, 0.0, 2.0, help="how much of the CLIPRemapper to apply"),
        refine_param(False),
        Param("describe_region", "bool", True,
              help="condition on the selection as the pack's CLIP reads it, with the "
                   "prompt's words (off: the prompt as typed)"),
        Param("auto_strength", "bool", True,
              help="where the pack's CLIP does not read the asked attributes on the pasted "
                   "edit, try strength x 1.5, 2, 3 and keep the first that it reads as "
                   "asked, the rest as it was"),
    )
    needs = ("generator", "encoder", "clip", "clipinverter")
    accepts_reference = True

    def __init__(self) -> None:
        self._nets: dict[int, CLIPInverterNets] = {}

    def networks(self, pack: Any, device: torch.device) -> CLIPInverterNets:
        gen, enc, clip = (pack.get(c) for c in ("generator", "encoder", "clip"))
        key = id(pack.get("clipinverter"))
        if key not in self._nets:
            self._nets[key] = load_clipinverter(pack.get("clipinverter"), gen, clip.embed_dim,
                                                level_channels(enc), device)
        return self._nets[key]

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        p = inputs.params
        pack = inputs.pack
        gen, enc, clip = (pack.get(c) for c in ("generator", "encoder", "clip"))
        nets = self.networks(pack, inputs.device)
        x, mask = framed_inputs(inputs, gen.size)
        read = region_reader(clip, x)
        captions = None
        if inputs.reference is None and p["describe_region"]:
            captions = region_captions(inputs.prompt, pack, read)
        if captions is None:
            target, target_text = clip_target(clip, inputs)
        else:
            target = clip.encode_prompt(captions[1]).to(inputs.device)
            target_text = repr(captions[1])
        with torch.no_grad():
            # one encoder pass gives both the encoder's w and the residual; the residual is
            # added to the pack's inversion (that w, refined when the manifest asks for it)
            w_encoder, delta = adapter_residual(enc, nets.adapter, x, target[None])
        inv, stages = invert_region(inputs, x, progress, cancel, 1, w0=w_encoder)
        cancel.check()
        paste = advise_paste(inputs.prompt, pack, read, recolour="colour")
        done = None
        if p["auto_strength"] and float(p["strength"]) > 0:
            done = EditCheck(inputs.prompt, pack, read, clip, x, inv.image, mask, paste)
        w, fixed, inversion = inv.w, inv.styles, inv.image
        mix = SpatialStyleMix.from_mask(fixed, mask, gen.size)

        @torch.no_grad()
        def render(s: float) -> torch.Tensor:
            styles = remapped_styles(gen, w + s * delta, nets.remapper, target[None],
                                     s * float(p["remap"]))
            return gen.synthesis_from_styles(styles, noise="fixed", style_mix=mix)

        gain = nets.residual_gain
        edited, s = stronger_until_read(render, float(p["strength"]) * gain, done)
        cancel.check()
        stages.step(1, f"edited towards {target_text} at strength {s / gain:g}", edited[0])
        info = similarity_info(clip, inversion, edited, target)
        info["strength"] = round(s / gain, 4)
        return MethodOutput(image=edited, inversion=inversion, paste=paste, info=info)
