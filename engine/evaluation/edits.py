"""``wordbrush eval edits``: the methods' harness on held-out canvas scenes of the pack's world.

Each case is a canvas scene (seeds of the ``test`` split, never trained on) with two or
three objects; one is selected the way the manifest says an evaluator selects (a soft
rectangle, tight or loose), and the prompt asks for a new colour, a new shape, a new size,
or two attributes at once. The request goes through the engine's own pipeline
(:meth:`engine.runner.EditRunner.run_local`: framing, method, paste-back), the patch is
composited over the canvas, and the pack's judge reads the selected object's frame and the
other objects' frames. Scores per method and prompt kind:

* ``reached``: the asked attribute(s) read on the edited object;
* ``kept``: the object's other attributes still read as the scene's ground truth (the
  judge reads held-out originals right about 100% of the time; the independent scenes'
  originals are counted separately);
* ``unselected unchanged``: every other object's pixels identical and read the same;
* ``outside changed px``: pixels where the selection is 0 that changed (must be 0).

Plus the real case: ten scenes drawn independently (plain Pillow shapes, other RGB values,
hard edges), whose originals the judge must read right first, each asked for a recolour.

Built-in prompts are written with caption templates held out of training (CLIP never saw
them). ``--prompts FILE`` replaces them with the user's own: JSON lines, one edit each,
``{"prompt": "...", "target": {"color": "green", ...}, "region": "object0" | "object1" |
"all"}``, each run on ``n`` held-out scenes whose named object does not already have any of
the target values (``all``: a one-object scene edited without a selection).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.training.data import to_tensor
from engine.world import (
    ATTR_KEYS,
    HELDOUT_TEMPLATES,
    WORLD_SPEC,
    BoxFraming,
    Scene,
    WorldSpec,
    caption,
    choices_rng,
    crop_frame,
    framed_attrs,
    parse_prompt,
    render_frame,
    render_independent_scene,
    render_scene,
    selection_for,
    split_seed,
)
from engine.world.captions import template_fields
from protocol.framing import Buffer
from protocol.messages import request_for_selection

__all__ = ["KINDS", "REGIONS", "EditCase", "PromptLine", "cases_from_prompts", "evaluate_edits",
           "make_cases", "read_prompt_file", "run_case"]

KINDS = ("color", "shape", "size", "two")
REGIONS = ("object0", "object1", "all")


@dataclass(frozen=True)
class PromptLine:
    """One line of a ``--prompts`` file."""

    prompt: str
    target: dict[str, str]
    region: str
    label: str  # "line N", the kind its cases are reported under
    #: a reference image beside the prompt: the attributes of the one object rendered for
    #: it (those not named drawn per case), e.g. {"color": "green"}
    reference: dict[str, str] | None = None


@dataclass
class EditCase:
    kind: str
    scene: Scene
    index: int  # the selected object
    box: tuple[int, int, int, int]
    selection: np.ndarray  # uint8 HxW
    truth: dict[str, str | None]  # the object's attributes in its frame
    target: dict[str, str]
    prompt: str
    independent: bool = False
    scene_seed: int = 0  # the scene's seed: the edit's own seed derives from it
    reference: dict[str, str] | None = None  # see PromptLine.reference


@dataclass
class CaseResult:
    case: EditCase
    read: dict[str, str]
    reached: bool
    kept: bool
    unselected_unchanged: bool
    outside_changed_px: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    outside_mae: float = 0.0  # mean absolute change (0-255) where the selection is 0
    l1: float = 0.0  # mean absolute change of the selected object's frame, 0-1
    clip_similarity: float = 0.0  # the pack's CLIP: edited frame against the prompt

    @property
    def cmp(self) -> float:
        """The CLIPInverter paper's CMP: (1 - L1 difference) x CLIP similarity."""
        return (1.0 - self.l1) * self.clip_similarity


def _other(values: Sequence[str], current: str | None, rng: np.random.Generator) -> str:
    choices = [v for v in values if v != current]
    return choices[int(rng.integers(len(choices)))]


def _target(kind: str, truth: dict[str, str | None], rng: np.random.Generator,
            spec: WorldSpec) -> dict[str, str]:
    if kind == "color":
        return {"color": _other(spec.colors, truth["color"], rng)}
    if kind == "shape":
        return {"shape": _other(spec.shapes, truth["shape"], rng)}
    if kind == "size":
        return {"size": _other(spec.sizes, truth["size"], rng)}
    if kind == "two":
        return {"color": _other(spec.colors, truth["color"], rng),
                "shape": _other(spec.shapes, truth["shape"], rng)}
    raise ValueError(f"unknown prompt kind {kind!r} (known: {', '.join(KINDS)})")


def _prompt(truth: dict[str, str | None], target: dict[str, str],
            rng: np.random.Generator) -> str:
    """What a user types: the object as they want it, the new value(s) with the kept shape
    (and colour), in a caption template held out of training that names every target
    attribute and no background ("a star coloured green", "there is a small star here")."""
    words: dict[str, str] = {k: str(truth[k]) for k in ("shape", "color") if truth.get(k)}
    words.update(target)
    usable = [t for t in HELDOUT_TEMPLATES
              if set(target) <= set(template_fields(t)) <= set(words)]
    return caption(words, usable[int(rng.integers(len(usable)))])


def _held_out_seeds(split: str, first_index: int) -> Iterator[tuple[int, np.random.Generator]]:
    """Consecutive seeds of ``split`` from ``first_index``, each with the stream the
    harness draws its choices about that scene from (:func:`choices_rng`)."""
    for k in itertools.count():
        seed = split_seed(split, first_index + k)
        yield seed, choices_rng(seed)


#: each kind draws its scenes from its own block of test seeds
KIND_SEED_STRIDE = 10_000
#: the report's scenes: kind k's block starts at REPORT_FIRST_SCENE + k * KIND_SEED_STRIDE
REPORT_FIRST_SCENE = 50_000


def make_cases(n_per_kind: int, kinds: Sequence[str] = KINDS, spec: WorldSpec = WORLD_SPEC,
               first_index: int = REPORT_FIRST_SCENE) -> list[EditCase]:
    """``n_per_kind`` held-out cases of each kind.

    A kind's scenes come from its own block of seeds, so they do not depend on which other
    kinds are asked for or in what order, and ``--n 10`` is the first half of ``--n 20``:
    an A/B run on one kind meets the same scenes as the full run.
    """
    cases: list[EditCase] = []
    for kind in kinds:
        seeds = _held_out_seeds("test", first_index + KINDS.index(kind) * KIND_SEED_STRIDE)
        made = 0
        while made < n_per_kind:
            seed, rng = next(seeds)
            scene = render_scene(seed, 256, 256, n_objects=int(rng.integers(2, 4)), spec=spec)
            index = int(rng.integers(len(scene.objects)))
            looseness = "tight" if rng.random() < 0.5 else "loose"
            box, sel = selection_for(scene, index, looseness, rng=rng, spec=spec)
            truth = framed_attrs(scene, index, box, spec)
            if truth.get("size") is None:
                continue
            target = _target(kind, truth, rng, spec)
            cases.append(EditCase(kind, scene, index, box, sel, truth, target,
                                  _prompt(truth, target, rng), scene_seed=seed))
            made += 1
    return cases


#: the report's independently drawn scenes start here (in their own split)
REPORT_FIRST_INDEPENDENT = 70_000


def independent_cases(n: int = 10, spec: WorldSpec = WORLD_SPEC,
                      first_index: int = REPORT_FIRST_INDEPENDENT) -> list[EditCase]:
    cases: list[EditCase] = []
    seeds = _held_out_seeds("independent", first_index)
    while len(cases) < n:
        seed, rng = next(seeds)
        scene = render_independent_scene(seed, 256, 256, n_objects=2, spec=spec)
        index = int(rng.integers(len(scene.objects)))
        box, sel = selection_for(scene, index, "tight", rng=rng, spec=spec)
        truth = framed_attrs(scene, index, box, spec)
        if truth.get("size") is None:
            continue
        target = _target("color", truth, rng, spec)
        cases.append(EditCase("color", scene, index, box, sel, truth, target,
                              _prompt(truth, target, rng), independent=True, scene_seed=seed))
    return cases


def read_prompt_file(path: Path, spec: WorldSpec = WORLD_SPEC) -> list[PromptLine]:
    """Parse and check a ``--prompts`` file (blank lines and ``#`` comments skipped); a bad
    line is a ValueError naming the file, the line and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the prompts file {path}: {exc}") from None
    values = {"shape": spec.shapes, "color": spec.colors, "size": spec.sizes,
              "background": spec.backgrounds}
    out: list[PromptLine] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object with prompt, target and region")
        if extra := sorted(set(item) - {"prompt", "target", "region", "reference"}):
            raise ValueError(f"{where}: unknown keys {extra}; a line has prompt, target, "
                             "region and optionally reference")
        prompt, target, region = item.get("prompt"), item.get("target"), item.get("region")
        reference = item.get("reference")
        if reference is not None:
            if not isinstance(reference, dict) or not reference:
                raise ValueError(f"{where}: 'reference' must be an object such as "
                                 '{"color": "green"}: the object rendered as the reference')
            for key, value in reference.items():
                if key not in ATTR_KEYS or value not in values[key]:
                    raise ValueError(f"{where}: reference {key}={value!r} is not one of this "
                                     "world's attributes")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: 'prompt' must be a non-empty string")
        if not isinstance(target, dict) or not target:
            raise ValueError(f"{where}: 'target' must be an object such as "
                             '{"color": "green"}')
        for key, value in target.items():
            if key not in ATTR_KEYS:
                raise ValueError(f"{where}: target key {key!r} is not one of "
                                 f"{', '.join(ATTR_KEYS)}")
            if value not in values[key]:
                raise ValueError(f"{where}: {value!r} is not a {key} of this world "
                                 f"({', '.join(values[key])})")
        if region not in REGIONS:
            raise ValueError(f"{where}: 'region' must be one of {', '.join(REGIONS)}, "
                             f"not {region!r}")
        # the judge scores the target and the rest as kept: a prompt asking for more, or
        # for something else, would be scored against what it asks
        try:
            named = parse_prompt(prompt, spec)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if differ := {k: v for k, v in named.items() if target.get(k) != v}:
            raise ValueError(f"{where}: the prompt asks for {differ}, which the target does "
                             f"not; the target must hold every value the prompt names")
        if region == "all" and target.get("size") == "large":
            raise ValueError(f"{where}: a whole one-object scene is framed tightly, so its "
                             "object is already large: no scene fits; use object0 or object1")
        out.append(PromptLine(prompt.strip(), dict(target), region, f"line {number}",
                              dict(reference) if reference else None))
    if not out:
        raise ValueError(f"{path} holds no prompts")
    return out


#: a prompt file's scenes start here, each line's block this far after the one before
REPORT_FIRST_PROMPT_SCENE = 60_000
PROMPT_LINE_STRIDE = 2_000


def overlaps_report(first_scene: int, n_per_kind: int) -> bool:
    """Whether the scene blocks that ``--first-scene first_scene`` moves to (the kinds', a
    prompt file's and the independent ones, all moved alike) may share scenes with the
    report's. A block of ``n`` cases uses a little over ``n`` seeds (some scenes are
    skipped); twice ``n`` bounds it."""
    span = (len(KINDS) - 1) * KIND_SEED_STRIDE + 2 * n_per_kind
    report = (REPORT_FIRST_SCENE, REPORT_FIRST_SCENE + span)
    moved = (first_scene, first_scene + span)
    return moved[0] < report[1] and report[0] < moved[1]


def cases_from_prompts(prompts: Sequence[PromptLine], n_per_prompt: int,
                       spec: WorldSpec = WORLD_SPEC,
                       first_index: int = REPORT_FIRST_PROMPT_SCENE) -> list[EditCase]:
    """``n_per_prompt`` held-out scenes per prompt line, the named object selected (or none
    for ``all``) and not already holding any target value.

    Each line draws from its own block of seeds (:data:`PROMPT_LINE_STRIDE` apart), with
    its own budget of tries: its scenes do not depend on the lines before it, and
    ``--n 10`` is the first half of ``--n 20``, as for the built-in kinds."""
    if n_per_prompt > PROMPT_LINE_STRIDE // 4:
        raise ValueError(f"a prompt file runs at most {PROMPT_LINE_STRIDE // 4} scenes a line "
                         f"(asked: {n_per_prompt})")
    cases: list[EditCase] = []
    for number, line in enumerate(prompts):
        seeds = _held_out_seeds("test", first_index + number * PROMPT_LINE_STRIDE)
        made = tries = 0
        while made < n_per_prompt:
            seed, rng = next(seeds)
            tries += 1
            if tries > PROMPT_LINE_STRIDE:
                raise ValueError(f"no held-out scene fits {line.label} ({line.prompt!r})")
            whole = line.region == "all"
            index = 0 if whole else int(line.region[-1])
            n_objects = 1 if whole else int(rng.integers(max(2, index + 1), 4))
            scene = render_scene(seed, 256, 256, n_objects=n_objects, spec=spec)
            if len(scene.objects) <= index:
                continue
            looseness = "tight" if whole or rng.random() < 0.5 else "loose"
            box, sel = selection_for(scene, index, looseness, rng=rng, spec=spec)
            if whole:
                sel = np.full_like(sel, 255)
            truth = framed_attrs(scene, index, box, spec)
            if truth.get("size") is None or any(truth.get(a) == v
                                                for a, v in line.target.items()):
                continue
            cases.append(EditCase(line.label, scene, index, box, sel, truth,
                                  dict(line.target), line.prompt, scene_seed=seed,
                                  reference=line.reference))
            made += 1
    return cases


def _frame(image: np.ndarray, box: Sequence[int], spec: WorldSpec) -> np.ndarray:
    rect = BoxFraming(spec.framing_factor).fit(box).frame_rect()
    return crop_frame(image, rect, spec.frame_size)


def judge_read(judge: Any, frames: list[np.ndarray]) -> list[dict[str, str]]:
    reads = judge.read(to_tensor(np.stack(frames)))
    return [{k: v for k, (v, _) in r.items()} for r in reads]


def _other_boxes(scene: Scene, index: int) -> list[tuple[int, int, int, int]]:
    """Tight evaluator boxes of the unselected objects (for reading them before and after)."""
    return [selection_for(scene, j, "tight")[0] for j in range(len(scene.objects)) if j != index]


def run_case(runner: Any, judge: Any, case: EditCase, method: str, pack: str,
             params: dict[str, Any], seed: int, spec: WorldSpec = WORLD_SPEC) -> CaseResult:
    from engine.imaging import Patch, composite_over, decode_pixels

    scene = case.scene
    h, w = scene.height, scene.width
    rgba = np.concatenate([scene.image, np.full((h, w, 1), 255, np.uint8)], axis=2)
    pack_obj = runner.packs.get(pack)
    reference = None
    if case.reference is not None:  # one object of those attributes, drawn per case
        image, _ = render_frame(case.reference, np.random.default_rng(case.scene_seed + 7),
                                spec.frame_size, spec)
        rgba_ref = np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], 2)
        reference = Buffer("reference", image.shape[1], image.shape[0], "rgba8",
                           rgba_ref.tobytes())
    request = request_for_selection(
        Buffer("layer", w, h, "rgba8", rgba.tobytes()), case.selection.tobytes(),
        pack_obj.framing.to_dict(), prompt=case.prompt, method=method, pack=pack,
        params=params, seed=seed, reference=reference)
    t0 = time.perf_counter()
    outcome = runner.run_local(request)
    seconds = time.perf_counter() - t0
    patch = outcome.patches[0]
    pixels = decode_pixels(patch.data, patch.width, patch.height, patch.format)
    edited = composite_over(rgba, Patch(pixels, outcome.offset, patch.format))[..., :3]
    unselected = case.selection == 0
    outside = int((np.any(edited != scene.image, axis=2) & unselected).sum())
    outside_mae = float(np.abs(edited.astype(np.int16) - scene.image)[unselected].mean()) \
        if unselected.any() else 0.0
    others = _other_boxes(scene, case.index)
    before = judge_read(judge, [_frame(scene.image, b, spec) for b in others]) if others else []
    frame_after = _frame(edited, case.box, spec)
    l1 = float(np.abs(frame_after.astype(np.float32) - _frame(scene.image, case.box, spec)
                      ).mean() / 255.0)
    reads = judge_read(judge, [frame_after] + [_frame(edited, b, spec) for b in others])
    read, after = reads[0], reads[1:]
    reached = all(read[k] == v for k, v in case.target.items())
    kept = all(read[k] == case.truth[k] for k in ("shape", "color", "size", "background")
               if k not in case.target and case.truth.get(k) is not None)
    same_pixels = all(
        np.array_equal(edited[scene.objects[j].mask > 0], scene.image[scene.objects[j].mask > 0])
        for j in range(len(scene.objects)) if j != case.index)
    unchanged = same_pixels and before == after
    return CaseResult(case, read, reached, kept, unchanged, outside, seconds, outcome.info,
                      outside_mae=outside_mae, l1=l1,
                      clip_similarity=_clip_similarity(pack_obj.get("clip"), frame_after,
                                                       case.prompt))


def _clip_similarity(clip: Any, frame: np.ndarray, prompt: str) -> float:
    import torch

    with torch.no_grad():
        image = clip.encode_image(to_tensor(frame[None]), differentiable=False).float()
        text = clip.encode_text([prompt]).float().to(image.device)
    return float(torch.nn.functional.cosine_similarity(image, text).item())


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    out: dict[str, Any] = {"kinds": list(dict.fromkeys(r.case.kind for r in results))}
    for kind in out["kinds"]:
        rs = [r for r in results if r.case.kind == kind]
        out[kind] = {"n": len(rs), "reached": float(np.mean([r.reached for r in rs])),
                     "kept": float(np.mean([r.kept for r in rs])),
                     "reached_and_kept": float(np.mean([r.reached and r.kept for r in rs]))}
    single = [r.reached for r in results if len(r.case.target) == 1]
    multiple = [r.reached for r in results if len(r.case.target) > 1]
    out["ama_single"] = float(np.mean(single)) if single else None
    out["ama_multiple"] = float(np.mean(multiple)) if multiple else None
    out["cmp"] = float(np.mean([r.cmp for r in results]))
    out["outside_mae"] = float(np.mean([r.outside_mae for r in results]))
    out["unselected_unchanged"] = float(np.mean([r.unselected_unchanged for r in results]))
    out["outside_changed_px"] = int(sum(r.outside_changed_px for r in results))
    seconds = [r.seconds for r in results]
    out["seconds_median"] = float(np.median(seconds))
    # the slowest tenth: a method whose fallbacks (a second pass, other steps) run on some
    # edits only can meet a time goal at the median and miss it there
    out["seconds_p90"] = float(np.percentile(seconds, 90))
    return out


GOALS = {"color": 0.90, "shape": 0.60, "size": 0.80}


def evaluate_edits(runner: Any, pack: str, methods: Sequence[str], kinds: Sequence[str] = KINDS,
                   n_per_kind: int = 20, n_independent: int = 10,
                   params: dict[str, Any] | None = None, seed: int = 0,
                   progress: bool = True, log: Callable[[str], None] = print,
                   prompts: Sequence[PromptLine] | None = None,
                   first_scene: int | None = None) -> dict[str, Any]:
    """Run every method on the same cases: the built-in ``kinds``, or the ``prompts`` of a
    file (``n_per_kind`` scenes per line).

    ``first_scene`` moves the built-in kinds, and a prompt file's and the independently
    drawn scenes by as much, to another block of held-out scenes: settings are chosen there
    (validation), so that the report's scenes are not what they were tuned on. ``None``:
    the report's scenes."""
    if first_scene is None:
        first_scene = REPORT_FIRST_SCENE
    from tqdm import tqdm

    judge = runner.packs.get(pack).get("judge")
    spec = WORLD_SPEC
    moved = first_scene - REPORT_FIRST_SCENE
    cases = (cases_from_prompts(prompts, n_per_kind, spec, REPORT_FIRST_PROMPT_SCENE + moved)
             if prompts else make_cases(n_per_kind, kinds, spec, first_index=first_scene))
    indep = independent_cases(n_independent, spec, REPORT_FIRST_INDEPENDENT + moved) \
        if n_independent else []
    originals_ok = [judge_read(judge, [_frame(c.scene.image, c.box, spec)])[0] for c in indep]
    report: dict[str, Any] = {"pack": pack, "n_per_kind": n_per_kind,
                              "first_scene": first_scene, "methods": {}}
    if prompts:
        report["prompts"] = {p.label: {"prompt": p.prompt, "target": p.target,
                                       "region": p.region} for p in prompts}
    for method in methods:
        results, indep_results = [], []
        bar = tqdm(total=len(cases) + len(indep), desc=f"eval {method}", disable=not progress)
        # each edit's seed is its scene's, so a run of some kinds, or of the first scenes
        # (--n 10 of --n 20), makes the very edits a full run makes on those scenes
        for case in cases:
            results.append(run_case(runner, judge, case, method, pack, dict(params or {}),
                                    seed + case.scene_seed, spec))
            bar.update(1)
        for case in indep:
            indep_results.append(run_case(runner, judge, case, method, pack,
                                          dict(params or {}), seed + case.scene_seed, spec))
            bar.update(1)
        bar.close()
        summary = summarise(results)
        if indep_results:
            read_ok = [all(o.get(k) == c.truth[k] for k in ("shape", "color", "background"))
                       for o, c in zip(originals_ok, indep, strict=True)]
            summary["independent"] = {
                "n": len(indep_results),
                "originals_read_right": int(sum(read_ok)),
                "recolour_reached": int(sum(r.reached for r in indep_results)),
                "outside_changed_px": int(sum(r.outside_changed_px for r in indep_results)),
                "outside_mae": float(np.mean([r.outside_mae for r in indep_results])),
                "unselected_unchanged": float(np.mean([r.unselected_unchanged
                                                       for r in indep_results])),
            }
        summary["cases"] = [
            {"kind": r.case.kind, "independent": r.case.independent, "prompt": r.case.prompt,
             "target": r.case.target, "truth": r.case.truth,
             "read": r.read, "reached": r.reached, "kept": r.kept,
             "unselected_unchanged": r.unselected_unchanged,
             "outside_changed_px": r.outside_changed_px, "outside_mae": round(r.outside_mae, 4),
             "seconds": round(r.seconds, 3), "paste": r.info.get("paste"),
             "l1": round(r.l1, 4), "clip_similarity": round(r.clip_similarity, 4),
             "cmp": round(r.cmp, 4), "inversion_psnr": r.info.get("inversion_psnr"),
             "read_as_asked": r.info.get("read_as_asked")}
            for r in results + indep_results]
        report["methods"][method] = summary
    return report


def format_report(report: dict[str, Any]) -> str:
    first = report.get("first_scene", REPORT_FIRST_SCENE)
    whose = ("overlapping the report's" if overlaps_report(first, report["n_per_kind"])
             else "not the report's")
    lines = [f"pack {report['pack']}, {report['n_per_kind']} held-out scenes per prompt kind"
             + ("" if first == REPORT_FIRST_SCENE else f" from scene {first:,} ({whose})")]
    for method, s in report["methods"].items():
        lines.append(f"\n{method}")
        lines.append(f"  {'kind':<8} {'reached':>8} {'kept':>7} {'both':>7}  goal")
        for kind in s["kinds"]:
            k = s[kind]
            goal = f"{100 * GOALS[kind]:.0f}%" if kind in GOALS else "-"
            prompt = report.get("prompts", {}).get(kind, {}).get("prompt")
            lines.append(f"  {kind:<8} {100 * k['reached']:7.1f}% {100 * k['kept']:6.1f}% "
                         f"{100 * k['reached_and_kept']:6.1f}%  {goal}"
                         + (f"  {prompt!r}" if prompt else ""))
        lines.append(f"  unselected objects unchanged: {100 * s['unselected_unchanged']:.1f}% "
                     "(goal 100%)")
        lines.append(f"  changed pixels outside the selection: {s['outside_changed_px']} "
                     f"(mean absolute change {s['outside_mae']:.3f}; goal 0)")
        single = "-" if s.get("ama_single") is None else f"{100 * s['ama_single']:.1f}%"
        multiple = "-" if s.get("ama_multiple") is None else f"{100 * s['ama_multiple']:.1f}%"
        lines.append(f"  AMA-single {single} (goal 60%), AMA-multiple {multiple}, "
                     f"CMP {s['cmp']:.3f}")
        lines.append(f"  seconds per edit: median {s['seconds_median']:.2f}, slowest tenth "
                     f"from {s['seconds_p90']:.2f}")
        if "independent" in s:
            ind = s["independent"]
            lines.append(f"  independently drawn scenes: judge reads {ind['originals_read_right']}"
                         f"/{ind['n']} originals right; recolour reached "
                         f"{ind['recolour_reached']}/{ind['n']} (goal "
                         f"{math.ceil(0.8 * ind['n'])}/{ind['n']}); unselected objects "
                         f"unchanged {100 * ind['unselected_unchanged']:.1f}%, changed pixels "
                         f"outside the selection {ind['outside_changed_px']}")
    if len(report["methods"]) > 1:
        lines.extend(_comparison(report))
    return "\n".join(lines)


def _comparison(report: dict[str, Any]) -> list[str]:
    """All methods side by side (the papers' Table 1 on this world): per prompt kind,
    asked attribute reached / others kept in %, then the time per edit: the median and
    the slowest tenth's shortest (p90)."""
    kinds = list(dict.fromkeys(k for s in report["methods"].values() for k in s["kinds"]))
    head = "".join(f"{k + ' reached/kept':>21}" for k in kinds)
    lines = ["", f"{'method':<21}{'AMA-1':>7}{'AMA-m':>7}{'CMP':>7}{head}{'ms/edit':>9}{'p90':>7}"]
    for method, s in report["methods"].items():
        cells = []
        for k in kinds:
            cell = f"{100 * s[k]['reached']:.0f} / {100 * s[k]['kept']:.0f}" if k in s else "-"
            cells.append(f"{cell:>21}")
        amas = "".join("      -" if s.get(k) is None else f"{100 * s[k]:6.0f}%"
                       for k in ("ama_single", "ama_multiple"))
        lines.append(f"{method:<21}{amas}{s['cmp']:7.3f}{''.join(cells)}"
                     f"{1000 * s['seconds_median']:9.0f}{1000 * s['seconds_p90']:7.0f}")
    return lines
