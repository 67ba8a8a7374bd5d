"""Where the optimisation methods start, and what they move.

Paint by Word and StyleCLIP's latent optimisation start from the inversion ``w0`` of the
framed region and move W+ towards the text. On a small pack the CLIP loss finds latents the
generator renders as smears well before it finds the asked object; a pack that ships
CLIPInverter has a one-pass edit that already lands near the asked object, on the
generator's images. Starting there (``start``), the optimisation refines an edit instead of
searching for one, the hybrid "predict, then optimise" of e4e + optimisation and PTI, with
every loss unchanged: the preservation term still holds the unedited inversion outside the
selection, the L2 pull holds the start, and ``strength`` still walks from the inversion.

``space`` chooses what moves: every W+ row on its own (the papers' W+), or one offset shared
by every row, which keeps the rows' differences as the inversion found them (StyleGAN's W,
where the demo pack's generator was trained longest).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .base import CancelFlag, InputRejected, MethodInputs, Param, ProgressFn
from .clipinverter import StylesFn, one_pass_edit, pack_networks
from .guidance import Inversion, ReadFn, Stages, invert_region

__all__ = ["START_CHOICES", "Start", "optimisation_start", "space_param", "start_param"]

START_CHOICES = ("auto", "inversion", "clipinverter")


def start_param(default: str = "auto") -> Param:
    return Param("start", "choice", default, choices=START_CHOICES,
                 help="where the optimisation starts: the inversion (the paper), or the "
                      "pack's CLIPInverter edit of it; auto: CLIPInverter's where the pack "
                      "has it")


def space_param(default: str) -> Param:
    return Param("space", "choice", default, choices=("w+", "w"),
                 help="what moves: every W+ row on its own, or one offset shared by all "
                      "rows (keeps the inversion's rows as they are relative to each other)")


@dataclass
class Start:
    """The inversion, the latent the optimisation starts from, how a latent near it is
    rendered into styles (``styles(w, along)``, ``along`` the strength: a CLIPInverter
    start's remapper blend walks from the inversion with it), and the progress bar
    (inversion steps, then the method's)."""

    inversion: Inversion
    w: Tensor
    styles: StylesFn
    stages: Stages
    from_edit: bool  # started from CLIPInverter's edit
    image: Tensor  # the start's render (the first preview)
    described: str  # what the start is, for the progress message

    def offset(self, space: str, jitter: float, generator: torch.Generator) -> Tensor:
        """The variable to optimise, seeded noise of scale ``jitter``: one row per W+ row
        (``w+``) or one row for all (``w``); the latent is ``self.w + offset``."""
        w = self.w
        shape = w.shape if space == "w+" else (w.shape[0], 1, w.shape[-1])
        return (jitter * torch.randn(shape, generator=generator)).to(w.device)

    def result_styles(self, offset: Tensor, strength: float) -> list[Tensor]:
        """The styles of the found latent ``self.w + offset`` walked from the inversion by
        ``strength`` (0: the inversion), the remapper's blend walking with it."""
        w0 = self.inversion.w
        return self.styles(w0 + strength * (self.w + offset - w0), strength)


def optimisation_start(inputs: MethodInputs, x: Tensor, mask: Tensor, read: ReadFn,
                       progress: ProgressFn, cancel: CancelFlag, steps: int) -> Start:
    """The ``start`` parameter's starting point for the framed region ``x`` (``read``: its
    :func:`.guidance.region_reader`). ``clipinverter`` on a pack without it is refused
    with a sentence saying so; ``auto`` falls back to the inversion there."""
    pack: Any = inputs.pack
    choice = str(inputs.params.get("start", "inversion"))
    has = getattr(pack, "has", lambda component: False)
    if choice == "clipinverter" and not has("clipinverter"):
        name = getattr(pack, "name", "")
        raise InputRejected(f"start=clipinverter needs the pack's CLIPInverter networks, "
                            f"which pack {name!r} does not have; use start=inversion")
    shared = inputs.memo.get("start") if inputs.memo is not None else None
    if shared is not None:
        # the seed changes nothing of the start: the request's other variations share it,
        # and their bars begin past the inversion
        stages = Stages(progress, shared.stages.inversion_steps, steps)
        stages.inverting(stages.inversion_steps, stages.inversion_steps)
        return dataclasses.replace(shared, stages=stages)
    start = _start(inputs, x, mask, read, progress, cancel, steps, choice, has)
    if inputs.memo is not None:
        inputs.memo["start"] = start
    return start


def _start(inputs: MethodInputs, x: Tensor, mask: Tensor, read: ReadFn, progress: ProgressFn,
           cancel: CancelFlag, steps: int, choice: str, has: Any) -> Start:
    pack: Any = inputs.pack
    if choice == "clipinverter" or (choice == "auto" and has("clipinverter")):
        # one adapter pass: paint-by-word from CLIPInverter's second pass reached fewer
        # two-at-once edits on held-out validation scenes (BENCHMARKS.md, session 16)
        edit = one_pass_edit(pack_networks(pack, inputs.device), inputs, x, mask, read,
                             progress, cancel, steps, passes=1)
        return Start(edit.inversion, edit.w, edit.styles, edit.stages, from_edit=True,
                     image=edit.image,
                     described=f"CLIPInverter's edit (strength {edit.strength:g})")
    inv, stages = invert_region(inputs, x, progress, cancel, steps)
    generator = pack.get("generator")

    def styles(w: Tensor, along: float = 1.0) -> list[Tensor]:
        return generator.styles(w)

    return Start(inv, inv.w, styles, stages, from_edit=False,
                 image=inv.image, described="inverted")
