"""What the CLIP-guided methods share: inverting the framed region (with progress), the
CLIP target of a prompt or a reference image, the augmented-views CLIP loss, and the
preservation loss outside the selection. One definition each, so every method is guided and
region-aware in the same way."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.augment import clip_views

from .base import CancelFlag, MethodInputs, MethodOutput, Param, ProgressFn
from .inversion import Inversion, Refinement, encode_w, invert

__all__ = [
    "NEAREST_STEPS",
    "EditCheck",
    "Inversion",
    "Keep",
    "Stages",
    "StepRead",
    "advise_paste",
    "anchor_caption",
    "anchored_prompt",
    "auto_step_param",
    "clip_loss",
    "clip_reads",
    "clip_target",
    "described_change",
    "framed_inputs",
    "invert_region",
    "keep_unnamed_param",
    "keeps_background",
    "ladder_batch",
    "named_values",
    "optimised_output",
    "pack_synonyms",
    "pack_vocabulary",
    "paste_advice",
    "project_edit",
    "project_param",
    "reference_weight_param",
    "refine_param",
    "region_captions",
    "region_reader",
    "similarity_info",
    "step_read_as_asked",
    "wants_projection",
    "words_from_reference",
]


def framed_inputs(inputs: MethodInputs, resolution: int) -> tuple[Tensor, Tensor]:
    """The framed image and selection at the generator's resolution, on the method's device."""
    x = inputs.image.to(inputs.device)
    mask = inputs.mask.to(inputs.device).clamp(0, 1)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True)
        mask = F.interpolate(mask, size=(resolution, resolution), mode="area")
    return x, mask


def refine_param(default: bool) -> Param:
    """Every method that inverts takes ``refine``: the pack's refinement steps after the
    encoder, or not. Optimisation methods default to on (their edit takes seconds anyway);
    one-pass methods to off (their point is speed; ``eval edits`` found no gain from it for
    them on the demo pack, where a recolour's delta paste cancels the inversion's error)."""
    return Param("refine", "bool", default,
                 help="refine the inversion with the pack's optimisation steps (seconds on a "
                      "CPU; off: the encoder alone, instant, but rounder shapes)")


@dataclass
class Stages:
    """One progress bar over the inversion's refinement steps, then the method's own."""

    progress: ProgressFn
    inversion_steps: int
    method_steps: int

    @property
    def total(self) -> int:
        return self.inversion_steps + self.method_steps

    def inverting(self, done: int, n: int, render: Tensor | None = None) -> None:
        """The first render (the encoder's) and every tenth are sent as previews."""
        preview = render[0] if render is not None and (done == 1 or done % 10 == 0) else None
        self.progress(done, self.total, f"inverting {done}/{n}", preview)

    def step(self, done: int, message: str, preview: Tensor | None = None) -> None:
        self.progress(self.inversion_steps + done, self.total, message, preview)


def invert_region(inputs: MethodInputs, image: Tensor, progress: ProgressFn,
                  cancel: CancelFlag, method_steps: int, w0: Tensor | None = None
                  ) -> tuple[Inversion, Stages]:
    """The pack's inversion of the framed region (encoder, then the refinement steps its
    manifest asks for unless the ``refine`` parameter is off), with progress and cancel.
    ``w0``: the encoder's W+ when the method already has it (not encoded again)."""
    pack = inputs.pack
    refinement = Refinement.of_pack(pack) if inputs.params.get("refine") else Refinement()
    stages = Stages(progress, refinement.steps, method_steps)
    stages.inverting(0, refinement.steps)
    inv = invert(pack.get("generator"), pack.get("encoder"), image, refinement,
                 on_step=stages.inverting, check=cancel.check, w0=w0)
    return inv, stages


@torch.no_grad()
def clip_target(clip: torch.nn.Module, inputs: MethodInputs,
                read: ReadFn | None = None) -> tuple[Tensor, str]:
    """The unit CLIP embedding to move towards, and what it is (for messages).

    With ``read`` (the framed region's :func:`region_reader`) and the ``keep_unnamed``
    parameter on, a prompt that leaves some of the pack's attributes unnamed is averaged
    with its :func:`anchored_prompt`, the unnamed values read off the region as the user
    drew it."""
    if inputs.reference is not None:
        ref = inputs.reference.to(inputs.device)
        image = clip.encode_image(ref, differentiable=False)[0]
        if not inputs.prompt.strip():
            return image, "the reference image"
        weight = float(inputs.params.get("reference_weight", REFERENCE_WEIGHT))
        text = clip.encode_prompt(inputs.prompt).to(inputs.device)
        both = weight * image + (1.0 - weight) * text
        return (both / both.norm().clamp_min(1e-8),
                f"{inputs.prompt!r} with the reference image (weight {weight:g})")
    target = clip.encode_prompt(inputs.prompt).to(inputs.device)
    anchor = None
    if read is not None and inputs.params.get("keep_unnamed"):
        anchor = anchored_prompt(inputs.prompt, pack_vocabulary(inputs.pack), read,
                                 pack_synonyms(inputs.pack))
    if anchor is None:
        return target, repr(inputs.prompt)
    both = target + clip.encode_prompt(anchor).to(inputs.device)
    return both / both.norm(), f"{inputs.prompt!r} (as {anchor!r})"


#: the reference image's share of a target made of a prompt and a reference image
REFERENCE_WEIGHT = 0.5


def reference_weight_param() -> Param:
    """``reference_weight``: the methods that take a reference image beside a prompt."""
    return Param("reference_weight", "float", REFERENCE_WEIGHT, 0.0, 1.0,
                 help="with a reference image and a prompt, the image's share of the CLIP "
                      "target (the prompt's: the rest): the text says what changes, the "
                      "image how it looks (\"a star\" and a green swatch: a green star)")


#: what a reference image beside a prompt gives, where the pack has words for it
REFERENCE_KEYS = ("color", "shape")


@torch.no_grad()
def words_from_reference(prompt: str, reference: Tensor, pack: Any
                         ) -> tuple[str, dict[str, str]] | None:
    """A prompt and a reference image as one text, on a pack with a vocabulary: the
    prompt's values, and for the colour and shape it does not name, the reference as the
    pack's CLIP reads it ("a star" and a green swatch: "a green star"), and what was read.
    None where the pack has no vocabulary, the prompt is empty, or it names both.

    The text says what changes, the image how it looks. A pack's own small CLIP reads its
    world's images well, but the networks trained on its text (CLIPInverter's adapter)
    know image embeddings poorly; words reach every method alike."""
    vocabulary = pack_vocabulary(pack)
    if not vocabulary or not prompt.strip():
        return None
    named = named_values(prompt, vocabulary, (*ANCHOR_KEYS, "background"), pack_synonyms(pack))
    take = [k for k in REFERENCE_KEYS if k not in named and vocabulary.get(k)]
    if not take:
        return None
    read = region_reader(pack.get("clip"), reference)({k: list(vocabulary[k]) for k in take})
    values = {**named, **read}
    words = [values.get("size"), values.get("color"), values.get("shape") or "shape"]
    text = "a " + " ".join(w for w in words if w)
    if values.get("background"):
        text += f" on a {values['background']} background"
    return text, read


def keep_unnamed_param(help_text: str | None = None) -> Param:
    """``keep_unnamed``: keep what the prompt does not name. For the CLIP-loss methods (the
    default ``help_text``), the switch for :func:`anchored_prompt`."""
    return Param("keep_unnamed", "bool", True, help=help_text or (
        "unless the prompt asks for a new colour, keep what it does not name (colour, "
        "shape, size) in the text target, as the pack's CLIP reads them on the region"),
        reads_vocabulary=True)


def clip_loss(clip: torch.nn.Module, image: Tensor, target: Tensor, n_views: int,
              generator: torch.Generator) -> Tensor:
    """1 - cosine similarity to ``target``, averaged over augmented views of ``image``."""
    emb = clip.encode_image(clip_views(image, n_views, generator))
    return 1.0 - (emb @ target).mean()


class Keep:
    """Preservation outside the dilated selection: pixels, and the encoder's first feature
    tap (a network of the pack, never its judge)."""

    def __init__(self, encoder: torch.nn.Module, reference: Tensor, mask: Tensor) -> None:
        self.encoder = encoder
        self.reference = reference
        self.keep = 1.0 - F.max_pool2d(mask, 5, 1, 2)
        with torch.no_grad():
            self.feat_ref = encoder.features(reference)[0]
        self.keep_feat = F.interpolate(self.keep, size=self.feat_ref.shape[-2:], mode="area")

    def __call__(self, image: Tensor) -> Tensor:
        diff = (image - self.reference).square().mean(1, keepdim=True)
        pixels = (diff * self.keep).sum() / self.keep.sum().clamp_min(1.0)
        feat = self.encoder.features(image)[0]
        fdiff = (feat - self.feat_ref).square().mean(1, keepdim=True)
        features = (fdiff * self.keep_feat).sum() / self.keep_feat.sum().clamp_min(1.0)
        return pixels + 0.1 * features


def project_param() -> Param:
    """``project``: the optimisation methods' switch for :func:`project_edit`."""
    return Param("project", "choice", "auto", choices=("auto", "on", "off"),
                 help="re-encode the edit with the pack's encoder and render that: an image "
                      "of the generator's world instead of what CLIP guidance drifted to, "
                      "at the cost of what the encoder misses (sharp points, fine detail); "
                      "auto: for new shapes and sizes from the inversion, not for recolours "
                      "nor from CLIPInverter's edit, nor on a pack without a vocabulary")


def wants_projection(setting: str, paste: str, from_edit: bool = False,
                     vocabulary: bool = True) -> bool:
    """``project=auto`` projects shape and size changes (paste advice ``render``) of an
    optimisation that started from the inversion: on the demo pack that turns their smears
    into objects at about the same judged rates, while recolours did better unprojected.
    From CLIPInverter's edit (``from_edit``), which the encoder made and the optimisation
    only refines, projecting cost shape and size edits (BENCHMARKS.md, session 13). On a
    pack without a ``vocabulary`` no prompt reads as a shape change (its advice is always
    ``render``) and auto never projects, as in the papers."""
    return setting == "on" or (setting == "auto" and vocabulary and paste == "render"
                               and not from_edit)


@torch.no_grad()
def project_edit(generator: Any, encoder: Any, edited: Tensor, inversion: Tensor,
                 paste: str) -> Tensor:
    """The edit brought back onto the generator's images through the encoder.

    CLIP guidance can lead the latent where the generator renders smears; the encoder only
    ever outputs latents of the world's images, so ``G(E(edit))`` is a clean image with the
    edit's colour, size and rough shape. For a shape or size change (``render``) that is
    the result. For a recolour (``delta`` or ``colour``) the encoder's own error would
    show, so the result is the inversion plus the projected change,
    ``G(E(edit)) - G(E(inversion))``.
    """
    def project(image: Tensor) -> Tensor:
        return generator.synthesis(encode_w(encoder, image.clamp(-1, 1)), noise="fixed")

    projected = project(edited)
    if paste != "render":
        return inversion + projected - project(inversion)
    return projected


def optimised_output(inputs: MethodInputs, read: ReadFn, inversion: Inversion,
                     edited: Tensor, target: Tensor, from_edit: bool = False) -> MethodOutput:
    """The optimisation methods' result: the paste advice (``read``: the framed region's
    :func:`region_reader`), the edit projected when their ``project`` parameter asks for it
    (never at strength 0, which is the inversion), and the CLIP similarities.

    ``from_edit``: the optimisation started from CLIPInverter's edit. Its recolours then
    move the whole object's colour alike, as the one-pass methods' do, and get the same
    ``colour`` paste; from the inversion the change varies across the region and keeps the
    ``delta`` paste (BENCHMARKS.md, sessions 11 and 13)."""
    pack, p = inputs.pack, inputs.params
    clip = pack.get("clip")
    paste = advise_paste(inputs.prompt, pack, read, "colour" if from_edit else "delta",
                         by_reference=inputs.reference is not None)
    if float(p["strength"]) > 0 and wants_projection(str(p["project"]), paste, from_edit,
                                                     bool(pack_vocabulary(pack))):
        edited = project_edit(pack.get("generator"), pack.get("encoder"), edited,
                              inversion.image, paste)
    return MethodOutput(image=edited, inversion=inversion.image, paste=paste,
                        info=similarity_info(clip, inversion.image, edited, target))


def _manifest_field(pack: Any, key: str) -> Any:
    manifest = getattr(pack, "manifest", None)
    return manifest.data.get(key) if manifest is not None else None


def pack_vocabulary(pack: Any) -> dict[str, list[str]] | None:
    return _manifest_field(pack, "vocabulary")


def pack_synonyms(pack: Any) -> Synonyms | None:
    """The manifest's ``synonyms``: other words a person types for a vocabulary value."""
    return _manifest_field(pack, "synonyms")


@torch.no_grad()
def similarity_info(clip: Any, before: Tensor, after: Tensor, target: Tensor) -> dict[str, Any]:
    """CLIP similarity to the target before and after the edit (reported with the result)."""
    sim_before = float(clip.encode_image(before, differentiable=False)[0] @ target)
    sim_after = float(clip.encode_image(after, differentiable=False)[0] @ target)
    return {"clip_similarity_before": round(sim_before, 4),
            "clip_similarity": round(sim_after, 4)}


#: vocabulary keys whose change moves outlines: the render must be pasted, not the delta
STRUCTURAL_KEYS = ("size", "shape")

#: read_current(choices) -> the value of each key the image shows now, e.g. by CLIP
ReadFn = Callable[[dict[str, list[str]]], dict[str, str]]

#: {key: {value: [words a person may type for it]}}, e.g. {"shape": {"circle": ["disc"]}}
Synonyms = dict[str, dict[str, list[str]]]


#: words and word pairs after which the values named, up to the next clause break, are
#: what the user does *not* want ("blue instead of a red circle")
_NEGATIONS = (("instead", "of"), ("rather", "than"), ("not",), ("no",))
_CLAUSE_BREAKS = {",", ";", "but", "and", "->", "to", "into", "so"}


def named_values(prompt: str, vocabulary: dict[str, list[str]],
                 keys: tuple[str, ...], synonyms: Synonyms | None = None) -> dict[str, str]:
    """The vocabulary value the prompt asks for, for each of ``keys``, by the value itself
    or one of its ``synonyms`` ("a disc" names the circle).

    A prompt may name the old value too: "make the red circle blue", "a red star -> a blue
    star", "blue instead of a red one". The value named last is the one asked for, leaving
    out values from "instead of", "rather than", "not" or "no" to the next clause break
    (a comma, "but", "and", "to", "->")."""
    words = prompt.lower().replace(",", " , ").replace(";", " ; ").replace(".", " ").split()
    wanted: list[bool] = []  # per word: not inside a negated stretch
    negated = False
    for i, word in enumerate(words):
        if word in _CLAUSE_BREAKS:
            negated = False
        elif any(tuple(words[i - len(p) + 1:i + 1]) == p for p in _NEGATIONS if i + 1 >= len(p)):
            negated = True
        wanted.append(not negated)
    named: dict[str, str] = {}
    for key in keys:
        others = (synonyms or {}).get(key, {})
        last_at: dict[str, int] = {}
        for value in vocabulary.get(key, []):
            spellings = {value.lower(), *(w.lower() for w in others.get(value, ()))}
            for i, word in enumerate(words):
                if word in spellings and wanted[i]:
                    last_at[value] = i
        if last_at:
            named[key] = max(last_at, key=last_at.__getitem__)
    return named


#: the attributes an edit anchors when the prompt leaves them out, in caption order
ANCHOR_KEYS = ("size", "color", "shape")
#: the keys a ``colour`` paste cannot change (:class:`EditCheck`)
GEOMETRY_KEYS = ("size", "shape")


def anchored_prompt(prompt: str, vocabulary: dict[str, list[str]] | None,
                    read_current: ReadFn, synonyms: Synonyms | None = None) -> str | None:
    """The prompt completed with what the region shows now, or None when nothing is missing.

    People name what they want changed ("there is a small star here") and expect the rest
    to stay; a CLIP loss on the bare prompt leaves the unnamed colour free to drift. The
    completion ("a small red star") names every attribute: the asked values from the
    prompt, the others as ``read_current`` (the pack's CLIP on the framed region) reads them.
    A recolour (a prompt naming a colour other than the one read) gets no completion:
    anchoring its size or shape cost recolours of hand-drawn shapes their colour; a prompt
    that names the colour the region already has ("a circle coloured blue" on a blue
    square) is a shape edit and is completed (BENCHMARKS.md, sessions 5 and 6).
    """
    if not vocabulary or not all(vocabulary.get(k) for k in ANCHOR_KEYS):
        return None
    named = named_values(prompt, vocabulary, ANCHOR_KEYS, synonyms)
    missing = [k for k in ANCHOR_KEYS if k not in named]
    if not missing:
        return None
    read_keys = missing + (["color"] if "color" in named else [])
    current = read_current({k: list(vocabulary[k]) for k in read_keys})
    if "color" in named and current.get("color") != named["color"]:
        return None
    return anchor_caption({**current, **named})


def anchor_caption(values: dict[str, str]) -> str:
    """"a <size> <color> <shape>": the caption every anchored text is written as."""
    return "a " + " ".join(values[k] for k in ANCHOR_KEYS)


def described_change(prompt: str, vocabulary: dict[str, list[str]] | None,
                     read_current: ReadFn, synonyms: Synonyms | None = None
                     ) -> tuple[dict[str, str], dict[str, str]] | None:
    """``(what the region shows, what the prompt names)``: every :data:`ANCHOR_KEYS` value
    as ``read_current`` reads it, and the values the prompt names; None when it names none.

    Text directions ``E(target) - E(neutral)`` move what the two texts disagree on, and
    StyleCLIP's global directions ask for a neutral text that differs from the target only
    in the edit. A fixed neutral ("a shape") disagrees with the prompt on every word, so
    its direction also pushes what the user did not ask to change; captions written from
    these two ("a large orange star" -> "a large blue star") differ only in the edit.
    """
    if not vocabulary or not all(vocabulary.get(k) for k in ANCHOR_KEYS):
        return None
    named = named_values(prompt, vocabulary, ANCHOR_KEYS, synonyms)
    if not named:
        return None
    return read_current({k: list(vocabulary[k]) for k in ANCHOR_KEYS}), named


def paste_advice(prompt: str, vocabulary: dict[str, list[str]] | None,
                 read_current: ReadFn | None = None, synonyms: Synonyms | None = None) -> str:
    """``render`` when the prompt asks for a new shape or size, else ``delta``.

    A recolour keeps the object's outline, so pasting only the change keeps the user's own
    edges and background; a new shape or size moves the outline, and a delta would leave the
    old one as a ghost. A prompt often names what it keeps ("a purple circle" for a circle
    made purple), so a named shape or size only counts as a change when ``read_current``
    (the pack's CLIP on the framed region) reads something else; without it, naming is enough.
    Packs without a vocabulary get ``render``.
    """
    if not vocabulary:
        return "render"
    named = named_values(prompt, vocabulary, STRUCTURAL_KEYS, synonyms)
    if not named:
        return "delta"
    if read_current is None:
        return "render"
    current = read_current({key: list(vocabulary[key]) for key in named})
    return "render" if any(current.get(k) != v for k, v in named.items()) else "delta"


def keeps_background(prompt: str, pack: Any) -> bool:
    """Whether a paste of this prompt's edit should leave the selection's background as the
    user has it: the pack's words include backgrounds and the prompt names none of them."""
    vocabulary = pack_vocabulary(pack)
    return bool(vocabulary) and "background" in vocabulary and not named_values(
        prompt, vocabulary, ("background",), pack_synonyms(pack))


def _best_combinations(clip: Any, embeddings: Tensor,
                       choices: dict[str, list[str]]) -> list[dict[str, str]]:
    """For each row of ``embeddings`` (image embeddings), the combination of values (one per
    key, in ``choices`` order) whose text "a <value> <value>" it is most like."""
    keys = list(choices)
    combos = list(itertools.product(*(choices[k] for k in keys)))
    texts = ["a " + " ".join(combo) for combo in combos]
    sims = embeddings @ clip.encode_text(texts).to(embeddings).T
    return [dict(zip(keys, combos[int(i)], strict=True)) for i in sims.argmax(dim=1)]


@torch.no_grad()
def region_reader(clip: Any, image: Tensor) -> ReadFn:
    """A :data:`ReadFn` on ``image`` by the pack's CLIP, zero-shot: the combination of
    values (one per key, in ``choices`` order) whose text "a <value> <value>" the image is
    most like, e.g. {"size": "small", "shape": "star"}. The image is encoded once, at the
    first read, and each set of choices read once, however many reads a method (its
    captions, paste advice, edit check) makes of it."""
    embedding: list[Tensor] = []
    answers: dict[tuple[tuple[str, tuple[str, ...]], ...], dict[str, str]] = {}

    @torch.no_grad()
    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        key = tuple((k, tuple(v)) for k, v in choices.items())
        if key not in answers:
            if not embedding:
                embedding.append(clip.encode_image(image, differentiable=False)[:1])
            answers[key] = _best_combinations(clip, embedding[0], choices)[0]
        return dict(answers[key])

    return read


@torch.no_grad()
def clip_reads(clip: Any, images: Tensor, choices: dict[str, list[str]]) -> list[dict[str, str]]:
    """One read of each image of the batch ``images`` (as :func:`region_reader` reads one),
    the batch encoded at once."""
    return _best_combinations(clip, clip.encode_image(images, differentiable=False), choices)


def region_captions(prompt: str, pack: Any, read: ReadFn) -> tuple[str, str] | None:
    """:func:`described_change` for a method, ``read`` being the framed region's
    :func:`region_reader`: ``(the region as read, the same with the prompt's values)`` as
    captions ("a large orange star", "a large blue star"), or None for a prompt naming none
    of the pack's words or a pack without a vocabulary."""
    change = described_change(prompt, pack_vocabulary(pack), read, pack_synonyms(pack))
    if change is None:
        return None
    current, named = change
    return anchor_caption(current), anchor_caption({**current, **named})


def unnamed_changes(prompt: str, pack: Any, read: ReadFn) -> list[tuple[str, str]]:
    """Caption pairs, one for every value the prompt does not ask for: the region with the
    prompt's values ("a large blue star"), and the same with one unnamed attribute changed
    ("a small blue star", "a large blue circle", ...). Empty where :func:`region_captions`
    is None."""
    vocabulary = pack_vocabulary(pack)
    change = described_change(prompt, vocabulary, read, pack_synonyms(pack))
    if change is None or vocabulary is None:
        return []
    current, named = change
    asked = {**current, **named}
    return [(anchor_caption(asked), anchor_caption({**asked, key: value}))
            for key in ANCHOR_KEYS if key not in named
            for value in vocabulary[key] if value != asked[key]]


@torch.no_grad()
def unnamed_directions(clip: Any, prompt: str, pack: Any, read: ReadFn,
                       device: Any = None) -> Tensor | None:
    """``[K, embed_dim]`` on ``device``: the CLIP text direction of each change in
    :func:`unnamed_changes`, or None where there is none."""
    pairs = unnamed_changes(prompt, pack, read)
    if not pairs:
        return None
    before, after = zip(*pairs, strict=True)
    return (clip.encode_prompt(list(after)) - clip.encode_prompt(list(before))).to(device)


class EditCheck:
    """Whether an edit, pasted as the user will see it, reads as asked: the pack's CLIP
    (never the judge) reads every :data:`ANCHOR_KEYS` value of the pasted frame, and each
    is the prompt's where it names one and the region's as first read where it does not.
    A prompt naming none of the pack's words, or a pack without a vocabulary, never reads
    as asked."""

    def __init__(self, prompt: str, pack: Any, read: ReadFn, clip: Any, frame: Tensor,
                 inversion: Tensor, mask: Tensor, paste: str) -> None:
        self.clip, self.frame, self.inversion, self.mask = clip, frame, inversion, mask
        self.paste = paste
        vocabulary = pack_vocabulary(pack)
        change = described_change(prompt, vocabulary, read, pack_synonyms(pack))
        self.wanted: dict[str, str] | None = None
        self.choices: dict[str, list[str]] = {}
        if change is not None and vocabulary is not None:
            current, named = change
            # a `colour` paste maps the colours of the user's own pixels: their shape and
            # size cannot change, so reading them again only adds CLIP's misreads
            keys = [k for k in ANCHOR_KEYS if not (paste == "colour" and k in GEOMETRY_KEYS)]
            self.wanted = {k: v for k, v in {**current, **named}.items() if k in keys}
            self.choices = {k: list(vocabulary[k]) for k in keys}

    def or_none(self) -> EditCheck | None:
        """This check, or ``None`` where it can never accept (the prompt names none of the
        pack's words): then no other step is worth a render."""
        return self if self.wanted is not None else None

    def pasted(self, image: Tensor) -> Tensor:
        """The frame as the paste-back shows ``image``: the render inside the selection, or
        (``delta`` and ``colour``, which carry the edit's change onto the user's pixels) the
        user's frame plus the change."""
        if self.paste == "render":
            return self.frame * (1 - self.mask) + image * self.mask
        return self.frame + self.mask * (image - self.inversion)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> list[bool]:
        """One verdict for each image of the batch ``images``."""
        if self.wanted is None:
            return [False] * len(images)
        got = clip_reads(self.clip, self.pasted(images).clamp(-1, 1), self.choices)
        return [read == self.wanted for read in got]


#: the multiples of a one-pass edit's step that :func:`step_read_as_asked` tries after it,
#: nearest first
NEAREST_STEPS = (0.75, 1.5, 0.5, 2.0, 3.0)

#: multiply-accumulates (:meth:`Generator.synthesis_macs`) a CPU draws in one batch of the
#: ladder: all five steps up to 2e9 an image (the demo pack: 2e8), two to four up to 5e9,
#: one at a time above (a 256 x 256 or 1024 x 1024 FFHQ generator: 8e10, 1.4e11)
CPU_BATCH_MACS = 10**10


def ladder_batch(macs: int, device: torch.device | str) -> int:
    """How many of :data:`NEAREST_STEPS` one call of a ladder's ``render`` may draw, for a
    generator whose one image costs ``macs`` (:meth:`Generator.synthesis_macs`), on
    ``device``.

    On a CPU a batch spares each render's fixed cost, which counts for small generators
    (five demo-pack renders at once take 0.64 of their time one by one), but not for
    large ones, whose batched convolutions run slower per image (five 1024 x 1024 renders
    take 1.62 of their time one by one and hold 4.9 GB instead of 1.7; ``wordbrush bench
    models``, BENCHMARKS.md session 19). Drawn one by one, the ladder also stops at the
    first step that reads as asked. A GPU draws the whole ladder at once."""
    if torch.device(device).type != "cpu":
        return len(NEAREST_STEPS)
    return max(1, min(len(NEAREST_STEPS), CPU_BATCH_MACS // max(1, macs)))


class StepRead(NamedTuple):
    """What :func:`step_read_as_asked` chose: the render, its step, and whether the check
    read it as asked (``None`` where there was no check)."""

    image: Tensor
    step: float
    as_asked: bool | None


def step_read_as_asked(render: Callable[[list[float]], Tensor], step: float,
                       done: Callable[[Tensor], list[bool]] | None,
                       batch: int = len(NEAREST_STEPS),
                       check: Callable[[], None] = lambda: None) -> StepRead:
    """``render([step])``, unless ``done`` (an :class:`EditCheck`) does not accept it and
    accepts another step of :data:`NEAREST_STEPS`: then the first such, the nearest to
    ``step``. ``render`` draws a batch, one image per step, of at most ``batch`` steps
    (:func:`ladder_batch`); ``done`` gives one verdict per image.

    One step for every edit does not fit all: a residual trained under latent
    regularisation stops short of a new shape more often than of a new colour, and a
    style direction's fixed α carries some recolours past the asked hue (red asked to be
    yellow comes out green). An edit that reads as asked, or that no step makes read so,
    is the plain one. The plain step is drawn alone, since most edits read as asked at
    it; the other steps in batches of ``batch``: for the demo pack on a CPU one batch of
    all five costs about 0.6 of drawing them one by one (BENCHMARKS.md, session 17). A
    batch stops the ladder only once all its images are drawn. ``check`` (the job's
    cancel check) runs before each batch: on a CPU a large generator draws them one by
    one, seconds each."""
    image = render([step])
    if done is None:
        return StepRead(image, step, None)
    if done(image)[0]:
        return StepRead(image, step, True)
    steps = [step * factor for factor in NEAREST_STEPS]
    size = max(1, batch)
    for first in range(0, len(steps), size):
        check()
        chunk = steps[first:first + size]
        others = render(chunk)
        for k, accepted in enumerate(done(others)):
            if accepted:
                return StepRead(others[k:k + 1], chunk[k], True)
    return StepRead(image, step, False)


def auto_step_param(name: str, step: str, set_by: tuple[str, ...]) -> Param:
    """The parameter ``name`` that switches :func:`step_read_as_asked` on, its help naming
    the method's step ``step`` (``auto_strength`` and "strength", ``auto_alpha`` and "α");
    a request that sets any of ``set_by`` (the step's own parameters) turns it off."""
    factors = ", ".join(f"{f:g}" for f in NEAREST_STEPS)
    return Param(name, "bool", True,
                 help=f"where the pack's CLIP does not read the asked attributes on the pasted "
                      f"edit, try {step} x {factors} (nearest first) and keep the first it "
                      f"reads as asked, the rest as it was; the {step} used (it may pass the "
                      f"{step} range) is in the result's info; off: exactly the {step} asked, "
                      f"and off by itself where the request sets {' or '.join(set_by)}",
                 reads_vocabulary=True, set_by=set_by)


def advise_paste(prompt: str, pack: Any, read: ReadFn, recolour: str = "delta",
                 by_reference: bool = False) -> str:
    """:func:`paste_advice` for a method's result, ``read`` being the framed region's
    :func:`region_reader` (the user's own pixels, not the inversion): what is there is what
    the user sees,
    and an inversion that rounds a star into a blob would turn "a blue star" into a reshape
    (BENCHMARKS.md, session 11).

    ``recolour`` is the mode a method wants where the advice is ``delta``: the one-pass
    methods move style channels, which change the whole object's colour alike, and the
    ``colour`` paste carries such a change onto every pixel of the user's object; the
    optimisers' changes vary across the region, which one colour map flattens (``eval
    edits``: their recolours reached less).

    An edit towards a reference image (``by_reference``) is pasted as rendered: the
    prompt's words do not say what it changes, and a reference of another shape could
    never show through a ``colour`` paste, or would leave the old outline in a ``delta``."""
    if by_reference:
        return "render"
    advice = paste_advice(prompt, pack_vocabulary(pack), read, pack_synonyms(pack))
    return recolour if advice == "delta" else advice
