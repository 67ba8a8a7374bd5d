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
values on the edit as it will be pasted, other strengths are tried, nearest first (x 0.75,
1.5, 0.5, 2, 3), and the first that reads as asked is kept
(:func:`.guidance.step_read_as_asked`); a residual trained under latent regularisation
stops short of a new shape more often than of a new colour. Where still no strength reads
as asked, the adapter runs again on the edit's render (``passes``, 2 by default), as the
paper's cycle pass does in training: a half-made new shape is read by the encoder as such,
and the second residual finishes it more often than a longer first step does (held-out
validation scenes, BENCHMARKS.md session 16). Each pass is one encoder pass.

The remapper follows the official code (``w (1 - 0.9 lambda) + 0.9 lambda mlp(t)``), not the
paper's eq. 6 (a residual blend rescaled to ||dw||): official checkpoints hold the code's
parameters. One pass is deterministic, so variations of one prompt are the same edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

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
    REFERENCE_WEIGHT,
    EditCheck,
    Inversion,
    ReadFn,
    Stages,
    advise_paste,
    auto_step_param,
    clip_target,
    framed_inputs,
    invert_region,
    ladder_batch,
    reference_weight_param,
    refine_param,
    region_captions,
    region_reader,
    similarity_info,
    step_read_as_asked,
)

__all__ = ["ClipInverter", "OnePassEdit", "StylesFn", "network_condition", "one_pass_edit",
           "pack_networks"]


#: adapter passes by default: a second where no strength of the first reads as asked
#: (held-out validation scenes, BENCHMARKS.md session 16)
PASSES = 2


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
                   "prompt's words (off: the prompt as typed)", reads_vocabulary=True),
        auto_step_param("auto_strength", "strength", ("strength",)),
        Param("passes", "int", PASSES, 1, 3,
              help="where no strength reads as asked (auto_strength's check), the adapter "
                   "runs again on the edit's render; up to this many passes"),
        reference_weight_param(),
    )
    needs = ("generator", "encoder", "clip", "clipinverter")
    accepts_reference = True
    seeded = False  # one forward pass and a fixed ladder
    one_pass = True

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        p = inputs.params
        pack = inputs.pack
        gen, clip = pack.get("generator"), pack.get("clip")
        x, mask = framed_inputs(inputs, gen.size)
        read = region_reader(clip, x)
        edit = one_pass_edit(pack_networks(pack, inputs.device), inputs, x, mask, read,
                             progress, cancel, method_steps=1,
                             describe_region=bool(p["describe_region"]),
                             auto_strength=bool(p["auto_strength"]),
                             strength=float(p["strength"]), remap=float(p["remap"]),
                             passes=int(p["passes"]))
        cancel.check()
        passes = f" in {edit.passes} passes" if edit.passes > 1 else ""
        edit.stages.step(1, f"edited towards {edit.target_text} at strength "
                            f"{edit.strength:g}{passes}", edit.image[0])
        info = similarity_info(clip, edit.inversion.image, edit.image, edit.target)
        info["strength"] = round(edit.strength, 4)
        info["passes"] = edit.passes
        if edit.as_asked is not None:
            info["read_as_asked"] = edit.as_asked
        return MethodOutput(image=edit.image, inversion=edit.inversion.image, paste=edit.paste,
                            info=info)


#: styles(w, along=1.0): style vectors of W+ ``w``; ``along`` scales what is applied besides
#: the latent (the remapper's blend), as a strength walks the edit from the inversion
StylesFn = Callable[..., list[Tensor]]

def pack_networks(pack: Any, device: torch.device) -> CLIPInverterNets:
    """The pack's CLIPInverter networks, built once per pack and device and kept with it."""
    def build() -> CLIPInverterNets:
        gen, enc, clip = (pack.get(c) for c in ("generator", "encoder", "clip"))
        return load_clipinverter(pack.get("clipinverter"), gen, clip.embed_dim,
                                 level_channels(enc), device)

    return pack.derived(f"clipinverter networks on {device}", build)


@dataclass
class OnePassEdit:
    """CLIPInverter's edit of a framed region: its latent, how to render a latent near it
    (the remapper applied as in the edit), its render, and what it was made from. The
    optimisation methods can start from it (their ``start`` parameter)."""

    w: Tensor  # W+: the inversion plus the residual at the chosen strength
    styles: StylesFn  # W+ -> style vectors, the remapper's blend as in the edit x along
    image: Tensor
    inversion: Inversion
    stages: Stages
    strength: float  # the first pass's, in units of the file's residual gain (the parameter's)
    target: Tensor
    target_text: str
    paste: str
    passes: int = 1  # adapter passes made (a second where the first did not read as asked)
    # the pack's CLIP reads the pasted edit as asked (auto_strength's check; None: no check,
    # for a prompt naming none of the pack's words)
    as_asked: bool | None = None


def network_condition(nets: CLIPInverterNets, clip: Any, inputs: MethodInputs,
                      target: Tensor, captions: tuple[str, str] | None) -> Tensor:
    """``[1, embed_dim]``: the embedding the adapter and remapper read. ``target`` (the unit
    embedding the pack's CLIP compares images with) for files trained here; for the
    released files the CLIP features as the model outputs them, as the official code feeds
    them (their norm is far from 1, and the networks' MLPs are not blind to it)."""
    if nets.embedding == "unit":
        return target[None]
    text = None
    if inputs.reference is None or inputs.prompt.strip():
        text = clip.text_features([captions[1] if captions else inputs.prompt]
                                  ).to(inputs.device)
    if inputs.reference is None:
        return text
    image = clip.image_features(inputs.reference.to(inputs.device))[:1]
    if text is None:
        return image
    weight = float(inputs.params.get("reference_weight", REFERENCE_WEIGHT))
    return weight * image + (1.0 - weight) * text  # as the unit target mixes them


def one_pass_edit(nets: CLIPInverterNets, inputs: MethodInputs, x: Tensor, mask: Tensor,
                  read: ReadFn, progress: ProgressFn, cancel: CancelFlag, method_steps: int,
                  describe_region: bool = True, auto_strength: bool = True,
                  strength: float = 1.0, remap: float = 1.0, passes: int = PASSES) -> OnePassEdit:
    """The one pass (see the module docstring) on the framed region ``x``; ``read`` is its
    :func:`.guidance.region_reader`. The inversion's progress bar gets ``method_steps``
    more steps for the caller."""
    pack = inputs.pack
    gen, enc, clip = (pack.get(c) for c in ("generator", "encoder", "clip"))
    captions = None
    if inputs.reference is None and describe_region:
        captions = region_captions(inputs.prompt, pack, read)
    if captions is None:
        target, target_text = clip_target(clip, inputs)
    else:
        target = clip.encode_prompt(captions[1]).to(inputs.device)
        target_text = repr(captions[1])
    condition = network_condition(nets, clip, inputs, target, captions)
    with torch.no_grad():
        # one encoder pass gives both the encoder's w and the residual; the residual is
        # added to the pack's inversion (that w, refined when the manifest asks for it)
        w_encoder, delta = adapter_residual(enc, nets.adapter, x, condition)
    inv, stages = invert_region(inputs, x, progress, cancel, method_steps, w0=w_encoder)
    cancel.check()
    paste = advise_paste(inputs.prompt, pack, read, recolour="colour",
                         by_reference=inputs.reference is not None)
    done = None
    if auto_strength and strength > 0 and inputs.reference is None:  # it reads words
        done = EditCheck(inputs.prompt, pack, read, clip, x, inv.image, mask,
                         inputs.pasted_as(paste)).or_none()
    mix = SpatialStyleMix.from_mask(inv.styles, mask, gen.size)
    gain = nets.residual_gain

    def styles_at(s: float | Tensor) -> StylesFn:
        def styles(w: Tensor, along: float = 1.0) -> list[Tensor]:
            return remapped_styles(gen, w, nets.remapper, condition, along * s * remap)
        return styles

    def steps_of(steps: list[float]) -> Tensor:
        return torch.tensor(steps, dtype=inv.w.dtype, device=inv.w.device)[:, None, None]

    @torch.no_grad()
    def draw(w: Tensor, blend: float | Tensor) -> Tensor:
        """The renders of W+ ``w`` (a batch) inside the selection, the remapper at ``blend``."""
        return gen.synthesis_from_styles(styles_at(blend)(w), noise="fixed", style_mix=mix)

    def render(steps: list[float]) -> Tensor:
        s = steps_of(steps)  # one W+ and one remapper blend for each step: [B, 1, 1]
        return draw(inv.w + s * delta, s[:, 0])

    batch = ladder_batch(gen.synthesis_macs(), inv.w.device)
    edited, s, as_asked = step_read_as_asked(render, strength * gain, done, batch,
                                             cancel.check)
    w_edit, used = inv.w + s * delta, 1
    for _ in range(passes - 1):
        if as_asked is not False:  # read as asked, or nothing to check it with
            break
        cancel.check()
        # the edit does not read as asked: the adapter again, on the edit's render (the
        # paper's cycle pass feeds the adapter its own edits in training, so it knows them)
        with torch.no_grad():
            w_render, delta = adapter_residual(enc, nets.adapter, edited, condition)

        def render_again(steps: list[float], w_render: Tensor = w_render,
                         delta: Tensor = delta) -> Tensor:
            return draw(w_render + steps_of(steps) * delta, s)  # the first pass's blend

        edited, t, as_asked = step_read_as_asked(render_again, strength * gain, done, batch,
                                                 cancel.check)
        w_edit, used = w_render + t * delta, used + 1
    return OnePassEdit(w=w_edit, styles=styles_at(s), image=edited, inversion=inv,
                       stages=stages, strength=s / gain, target=target,
                       target_text=target_text, paste=paste, passes=used,
                       as_asked=as_asked)
