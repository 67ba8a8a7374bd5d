"""The shipped edit methods through the engine's pipeline, on a tiny random pack: the
invariants that hold whatever the weights (quality is judged by `wordbrush eval edits` on
the real pack)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import methods
from engine.imaging import Patch, composite_over, decode_pixels
from engine.methods.base import CancelFlag, Cancelled, InputRejected, MethodInputs
from engine.methods.clipinverter import pack_networks
from engine.methods.guidance import (
    NEAREST_STEPS,
    EditCheck,
    anchor_caption,
    anchored_prompt,
    clip_reads,
    described_change,
    ladder_batch,
    named_values,
    paste_advice,
    project_edit,
    region_reader,
    step_read_as_asked,
    wants_projection,
)
from engine.models.clipinverter import GAIN_KEY
from engine.models.stylegan2 import Generator
from engine.packs import REPO_PACKS, PackRegistry
from engine.runner import EditRunner
from engine.training.clipinverter import GAIN_GRID
from engine.training.data import vocab as world_vocab
from engine.training.directions import precompute_feu_corpus, precompute_global_directions
from protocol.errors import WordbrushError
from protocol.framing import Buffer
from protocol.messages import EditRequest, request_for_selection
from tests.support.canvas import random_canvas
from tests.support.packs import make_pack

FAST = {"steps": 3, "views": 2}
METHODS = ["paint-by-word", "latent-optimization", "global-directions", "feu"]
OPTIMISERS = ["paint-by-word", "latent-optimization"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PackRegistry:
    folder = tmp_path_factory.mktemp("packs")
    make_pack(folder / "tiny", judge=True, refine_steps=2)
    pack = PackRegistry([folder]).get("tiny")
    precompute_global_directions(pack, n_images=2, n_stats=64, progress=False)
    precompute_feu_corpus(pack, n_images=40, batch=20, progress=False)
    return PackRegistry([folder])  # re-read: the manifest now names the artefacts


@pytest.fixture(scope="module")
def runner(registry: PackRegistry) -> EditRunner:
    return EditRunner(registry, "cpu")


def _fast(method: str) -> dict[str, object]:
    return dict(FAST) if method in OPTIMISERS else {"k": 5} if method == "feu" else {}


def _request(rgba: np.ndarray, sel: np.ndarray | None, method: str = "paint-by-word",
             **kw: object) -> EditRequest:
    h, w = rgba.shape[:2]
    fields = {"prompt": "a green star", "method": method, "pack": "tiny",
              "params": _fast(method), "seed": 7, **kw}
    return request_for_selection(Buffer("layer", w, h, "rgba8", rgba.tobytes()),
                                 None if sel is None else sel.tobytes(),
                                 {"kind": "box", "factor": 0.7}, **fields)


@pytest.mark.parametrize("method", METHODS)
def test_registered_and_advertised(runner: EditRunner, method: str) -> None:
    assert method in methods.available()
    info = next(m for m in runner.describe()["methods"] if m["id"] == method)
    names = {p["name"] for p in info["params"]}
    assert "strength" in names
    if method in OPTIMISERS:
        assert {"steps", "lr", "views", "preserve", "l2", "jitter"} <= names
    else:
        assert {"alpha", "beta"} <= names
    assert info["accepts_reference"] is (method != "global-directions")


def test_out_of_range_parameter_is_a_clear_error(runner: EditRunner) -> None:
    rgba, sel = random_canvas()
    with pytest.raises(WordbrushError, match="steps"):
        runner.plan(_request(rgba, sel, params={"steps": 100000}))


@pytest.mark.parametrize("method", METHODS)
def test_outside_the_selection_is_bit_identical(runner: EditRunner, method: str) -> None:
    rgba, sel = random_canvas()
    request = _request(rgba, sel, method, variations=2)
    progress: list[tuple[int, int, str, bool]] = []

    def record(step: int, total: int, message: str, preview: object) -> None:
        progress.append((step, total, message, preview is not None))

    outcome = runner.run_local(request, record)
    assert len(outcome.patches) == (2 if methods.get(method).seeded else 1)
    for patch in outcome.patches:
        pixels = decode_pixels(patch.data, patch.width, patch.height, patch.format)
        out = composite_over(rgba, Patch(pixels, outcome.offset, patch.format))
        outside = sel == 0
        assert np.array_equal(out[outside], rgba[outside])
        alpha = np.frombuffer(patch.data, np.uint8).reshape(patch.height, patch.width, 4)[..., 3]
        x, y = outcome.offset
        sub = sel[y:y + patch.height, x:x + patch.width]
        assert (alpha[sub == 0] == 0).all()
        assert (alpha <= np.maximum(sub, 0)).all()  # never grown beyond the selection
    assert progress[-1][0] == progress[-1][1]
    assert any(p[3] for p in progress), "a preview was streamed"
    assert "inversion_psnr" in outcome.info


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_per_seed_and_variations_differ(runner: EditRunner, method: str) -> None:
    rgba, sel = random_canvas(1)
    a = runner.run_local(_request(rgba, sel, method, variations=2))
    b = runner.run_local(_request(rgba, sel, method, variations=2))
    assert [p.data for p in a.patches] == [p.data for p in b.patches]
    if methods.get(method).seeded:
        assert a.patches[0].data != a.patches[1].data
    else:  # the same edit for every seed: one layer and a word why, not copies
        assert len(a.patches) == 1 and "one result for a prompt" in a.info["warnings"][0]


@pytest.mark.parametrize("method", METHODS)
def test_whole_image_without_mask(runner: EditRunner, method: str) -> None:
    rgba, _ = random_canvas(2, 40, 40)
    outcome = runner.run_local(_request(rgba, None, method))
    assert outcome.offset == (0, 0)
    assert (outcome.patches[0].width, outcome.patches[0].height) == (40, 40)


def _inputs(registry: PackRegistry, method: str = "paint-by-word", **params: object
            ) -> MethodInputs:
    pack = registry.get("tiny")
    all_params = {p.name: p.default for p in methods.get(method).params}
    all_params.update(_fast(method))
    all_params.update(params)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    return MethodInputs(image=torch.rand(1, 3, 32, 32) * 2 - 1, mask=mask, prompt="a red star",
                        params=all_params, seed=3, pack=pack)


@pytest.mark.parametrize("method", METHODS)
def test_strength_zero_is_the_inversion(registry: PackRegistry, method: str) -> None:
    out = methods.get(method)().run(_inputs(registry, method, strength=0.0), lambda *a: None,
                                    CancelFlag())
    assert out.inversion is not None
    assert torch.allclose(out.image, out.inversion, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_refine_switches_the_packs_inversion_steps(registry: PackRegistry, method: str) -> None:
    default = next(p.default for p in methods.get(method).params if p.name == "refine")
    assert default is (method in OPTIMISERS)  # one-pass methods stay instant by default
    totals = {}
    inversions = {}
    for refine in (False, True):
        seen: list[int] = []
        inputs = _inputs(registry, method, strength=0.0, refine=refine)
        torch.manual_seed(0)
        inputs.image = torch.rand(1, 3, 32, 32) * 2 - 1

        def record(step: int, total: int, message: str, preview: object,
                   seen: list[int] = seen) -> None:
            seen.append(total)

        out = methods.get(method)().run(inputs, record, CancelFlag())
        totals[refine], inversions[refine] = seen[0], out.inversion
    assert totals[True] == totals[False] + 2  # the tiny pack names 2 refinement steps
    assert not torch.equal(inversions[True], inversions[False])


@pytest.mark.parametrize("method", METHODS)
def test_cancel_between_steps(registry: PackRegistry, method: str) -> None:
    flag = CancelFlag()

    def progress(step: int, total: int, message: str, preview: object) -> None:
        if step >= 1:
            flag.set()

    with pytest.raises(Cancelled):
        methods.get(method)().run(_inputs(registry, method, steps=10), progress, flag)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "global-directions"])
def test_reference_image_replaces_the_text(registry: PackRegistry, method: str) -> None:
    inputs = _inputs(registry, method)
    inputs.reference = torch.rand(1, 3, 32, 32) * 2 - 1
    inputs.prompt = ""
    out = methods.get(method)().run(inputs, lambda *a: None, CancelFlag())
    assert out.image.shape == (1, 3, 32, 32)
    # the prompt's words do not say what a reference changes: pasted as rendered
    assert out.paste == "render"


def test_paste_advice() -> None:
    vocab = {"shape": ["circle", "star"], "size": ["small", "large"], "color": ["red"]}
    assert paste_advice("a red circle", {"color": ["red"]}) == "delta"
    assert paste_advice("a red star", vocab) == "render"
    assert paste_advice("a small red thing", vocab) == "render"
    assert paste_advice("something red", vocab) == "delta"
    assert paste_advice("anything", None) == "render"
    # a named shape or size that the region already shows is kept, not a change
    asked: list[dict[str, list[str]]] = []

    def shows(current: dict[str, str]):  # type: ignore[no-untyped-def]
        def read(choices: dict[str, list[str]]) -> dict[str, str]:
            asked.append(choices)
            return {k: current[k] for k in choices}
        return read

    assert paste_advice("a red circle", vocab, shows({"shape": "circle"})) == "delta"
    assert asked[-1] == {"shape": ["circle", "star"]}
    assert paste_advice("a red star", vocab, shows({"shape": "circle"})) == "render"
    assert paste_advice("a small star", vocab, shows({"shape": "star", "size": "small"})
                        ) == "delta"
    assert paste_advice("a large star", vocab, shows({"shape": "star", "size": "small"})
                        ) == "render"
    assert paste_advice("something red", vocab, shows({})) == "delta"


def test_anchored_prompt_names_what_the_prompt_leaves_out() -> None:
    vocab = {"shape": ["circle", "star"], "size": ["small", "large"],
             "color": ["red", "green"]}
    asked: list[dict[str, list[str]]] = []

    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        asked.append(choices)
        return {k: {"shape": "circle", "size": "large", "color": "red"}[k] for k in choices}

    assert anchored_prompt("there is a small star here", vocab, read) == "a small red star"
    assert asked[-1] == {"color": ["red", "green"]}
    assert anchored_prompt("make it larger", vocab, read) == "a large red circle"
    assert anchored_prompt("make it green", vocab, read) is None  # a recolour: no anchor
    assert asked[-1] == {"shape": ["circle", "star"], "size": ["small", "large"],
                         "color": ["red", "green"]}
    # the colour it already has: a shape edit, completed with the size
    assert anchored_prompt("a star coloured red", vocab, read) == "a large red star"
    assert anchored_prompt("a small green star", vocab, read) is None  # nothing missing
    assert anchored_prompt("a green star", None, read) is None
    assert anchored_prompt("a green star", {"color": ["green"]}, read) is None


def test_synonyms_name_their_value() -> None:
    """"a big disc" names size and shape: completing it with the size the region has now
    ("a small ...") would aim against what the user typed."""
    vocab = {"shape": ["circle", "star"], "size": ["small", "large"],
             "color": ["red", "purple"]}
    synonyms = {"shape": {"circle": ["disc"]}, "size": {"large": ["big"]},
                "color": {"purple": ["violet"]}}

    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        return {k: {"shape": "star", "size": "small", "color": "red"}[k] for k in choices}

    assert named_values("A big disc.", vocab, ("size", "shape"), synonyms) == {
        "size": "large", "shape": "circle"}
    assert named_values("a big disc", vocab, ("size", "shape")) == {}  # without them
    # the old value named too: the one asked for is named last, or not after "instead of"
    for prompt in ("make the red circle purple", "a red star -> a purple star",
                   "purple instead of red", "not red but purple", "turn red to purple",
                   "a purple star instead of a red circle", "purple rather than a red one",
                   "no red, make it purple"):
        assert named_values(prompt, vocab, ("color",)) == {"color": "purple"}, prompt
    assert named_values("turn this purple circle red", vocab, ("color",)) == {"color": "red"}
    assert named_values("a purple star instead of a red circle", vocab,
                        ("color", "shape")) == {"color": "purple", "shape": "star"}
    assert anchored_prompt("a big disc", vocab, read, synonyms) == "a large red circle"
    assert anchored_prompt("a violet star", vocab, read, synonyms) is None  # a recolour
    assert paste_advice("a disc", vocab, read, synonyms) == "render"
    assert paste_advice("a violet star", vocab, read, synonyms) == "delta"


def test_the_demo_manifest_carries_the_worlds_synonyms() -> None:
    from engine.packs import REPO_PACKS
    from engine.training.export import manifest_for
    from engine.world import WORLD_SPEC

    shipped = json.loads((REPO_PACKS / "demo" / "pack.json").read_text())
    assert shipped["synonyms"] == manifest_for(WORLD_SPEC, {})["synonyms"]
    assert "disc" in shipped["synonyms"]["shape"]["circle"]


def test_keep_unnamed_changes_the_target(registry: PackRegistry) -> None:
    from engine.methods.guidance import clip_target

    pack = registry.get("tiny")
    clip = pack.get("clip")
    image = torch.rand(1, 3, 32, 32) * 2 - 1

    def inputs(keep: bool) -> MethodInputs:
        return MethodInputs(image=image, mask=torch.ones(1, 1, 32, 32), prompt="a star",
                            params={"keep_unnamed": keep}, seed=0, pack=pack)

    bare, text = clip_target(clip, inputs(False), region_reader(clip, image))
    anchored, anchored_text = clip_target(clip, inputs(True), region_reader(clip, image))
    assert text == "'a star'" and "(as 'a " in anchored_text
    assert abs(float(anchored.norm()) - 1) < 1e-5
    assert not torch.allclose(bare, anchored)


def test_project_edit_goes_through_the_encoder(registry: PackRegistry) -> None:
    pack = registry.get("tiny")
    gen, enc = pack.get("generator"), pack.get("encoder")
    torch.manual_seed(0)
    inversion, edited = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        through = gen.synthesis(enc(edited) + enc.latent_avg, noise="fixed")
    assert torch.allclose(project_edit(gen, enc, edited, inversion, "render"), through)
    # a recolour (either recolour paste) keeps the inversion and adds only the projected change
    with torch.no_grad():
        base = gen.synthesis(enc(inversion) + enc.latent_avg, noise="fixed")
    for paste in ("delta", "colour"):
        assert torch.allclose(project_edit(gen, enc, inversion, inversion, paste), inversion,
                              atol=1e-5)
        delta = project_edit(gen, enc, edited, inversion, paste) - inversion
        assert torch.allclose(delta, through - base, atol=1e-5)
    assert wants_projection("auto", "render") and not wants_projection("auto", "delta")
    assert wants_projection("on", "delta") and not wants_projection("off", "render")
    # from CLIPInverter's edit, auto does not project; on still does
    assert not wants_projection("auto", "render", from_edit=True)
    assert wants_projection("on", "render", from_edit=True)


def test_clip_read_picks_among_the_choices(registry: PackRegistry) -> None:
    clip = registry.get("tiny").get("clip")
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    read = region_reader(clip, image)({"size": ["small", "large"], "shape": ["circle", "star"]})
    assert list(read) == ["size", "shape"]
    assert read["size"] in ("small", "large") and read["shape"] in ("circle", "star")
    texts = ["a small circle", "a small star", "a large circle", "a large star"]
    with torch.no_grad():
        sims = clip.encode_text(texts) @ clip.encode_image(image, differentiable=False)[0]
    assert "a " + " ".join(read.values()) == texts[int(sims.argmax())]
    # a batch is read image by image, as each alone
    batch = torch.cat([image, -image, image.flip(-1)])
    choices = {"size": ["small", "large"], "shape": ["circle", "star"]}
    assert clip_reads(clip, batch, choices) == [region_reader(clip, one[None])(choices)
                                                for one in batch]
    # a method's reader encodes its region once, however many reads it makes
    encoded: list[torch.Tensor] = []
    original = clip.encode_image

    def counting(images: torch.Tensor, differentiable: bool = True) -> torch.Tensor:
        encoded.append(images)
        return original(images, differentiable=differentiable)

    texts_encoded: list[list[str]] = []
    original_text = clip.encode_text

    def counting_text(batch: list[str]) -> torch.Tensor:
        texts_encoded.append(batch)
        return original_text(batch)

    clip.encode_image, clip.encode_text = counting, counting_text
    try:
        reader = region_reader(clip, image)
        both = {"size": ["small", "large"], "shape": ["circle", "star"]}
        assert reader(both) == read
        assert reader({"shape": ["circle", "star"]})["shape"] in ("circle", "star")
        answer = reader(both)
        answer["size"] = "changed by the caller"
        assert reader(both) == read  # each set of choices is read once, and not shared
    finally:
        del clip.encode_image, clip.encode_text
    assert len(encoded) == 1 and len(texts_encoded) == 2


def test_request_for_selection_crops_to_the_model_square(tmp_path: Path) -> None:
    rgba, sel = random_canvas()
    request = _request(rgba, sel)
    x, y = request.offset
    assert request.layer.width < rgba.shape[1] or request.layer.height < rgba.shape[0]
    crop = np.frombuffer(request.layer.data, np.uint8).reshape(request.layer.height,
                                                                request.layer.width, 4)
    assert np.array_equal(crop, rgba[y:y + crop.shape[0], x:x + crop.shape[1]])
    with pytest.raises(ValueError, match="selects nothing"):
        _request(rgba, np.zeros_like(sel))


def test_svm_direction_contrasts_the_region_when_asked() -> None:
    """The paper's negatives (least like the prompt) differ from it along the prompt's own
    axis; negatives like the region's description make the normal leave that axis too."""
    from engine.methods.feu import svm_direction

    rng = np.random.default_rng(0)
    e = np.eye(4)
    groups = [e[0], e[1], -e[0]]  # asked for, the region now, unrelated
    corpus = np.concatenate([g + 0.1 * rng.standard_normal((30, 4)) for g in groups])
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    paper = svm_direction(corpus, e[0], k=30, seed=1)
    # any seed a request may carry (up to 2**63 - 1), though scikit-learn takes < 2**32
    assert np.allclose(svm_direction(corpus, e[0], k=30, seed=2**63 - 1),
                       svm_direction(corpus, e[0], k=30, seed=2**63 - 1))
    contrast = svm_direction(corpus, e[0], k=30, seed=1, negative_text=e[1])
    assert paper[0] > 0.8 and abs(paper[1]) < 0.3
    assert contrast[0] > 0.4 and contrast[1] < -0.4
    assert np.allclose(contrast, svm_direction(corpus, e[0], k=30, seed=1,
                                               negative_text=e[1]))


def test_global_directions_reads_neutral_and_target() -> None:
    from engine.methods.global_directions import split_prompt

    assert split_prompt("a red star -> a blue star", "a shape") == ("a red star", "a blue star")
    assert split_prompt("a blue star", "a shape") == ("a shape", "a blue star")
    with pytest.raises(ValueError, match="neutral -> target"):
        split_prompt(" -> a blue star", "a shape")


def test_pastes_keep_the_background_unless_the_prompt_names_one(registry: PackRegistry) -> None:
    from engine.methods.guidance import keeps_background

    pack = registry.get("tiny")
    background = world_vocab()["background"][0]
    assert keeps_background("a blue star", pack)
    assert not keeps_background(f"a blue star on a {background} background", pack)

    class NoWords:
        manifest = None

    assert not keeps_background("a blue star", NoWords())


def test_the_runner_keeps_the_selections_background(runner: EditRunner) -> None:
    """A recolour on a plain background, loosely selected: the background's pixels inside
    the selection come back exactly as they were (``keep_background``, the default)."""
    h, w = 60, 80
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[...] = (204, 191, 153, 255)
    rgba[25:37, 34:48] = (255, 128, 26, 255)
    sel = np.zeros((h, w), np.uint8)
    sel[15:47, 24:58] = 255
    background = np.ones((h, w), bool)
    background[25:37, 34:48] = False
    for keep in (True, False):
        outcome = runner.run_local(_request(rgba, sel, method="global-directions",
                                            prompt="a blue square",
                                            params={"paste": "colour", "alpha": 20.0,
                                                    "auto_alpha": False,
                                                    "keep_background": keep}))
        patch = outcome.patches[0]
        x, y = outcome.offset
        pixels = np.frombuffer(bytes(patch.data), np.uint8).reshape(patch.height,
                                                                    patch.width, 4)
        inside = background[y:y + patch.height, x:x + patch.width]
        same = np.array_equal(pixels[inside][:, :3], rgba[y:y + patch.height,
                                                           x:x + patch.width][inside][:, :3])
        assert same == keep


def test_one_pass_methods_ask_recolours_for_the_colour_paste(registry: PackRegistry) -> None:
    from engine.methods.guidance import advise_paste

    pack = registry.get("tiny")
    clip, region = pack.get("clip"), torch.zeros(1, 3, 32, 32)
    read = region_reader(clip, region)
    assert advise_paste("make it red", pack, read) == "delta"  # names no outline
    assert advise_paste("make it red", pack, read, recolour="colour") == "colour"
    shape = region_reader(clip, region)({"shape": list(world_vocab()["shape"])})["shape"]
    other = next(s for s in world_vocab()["shape"] if s != shape)
    assert advise_paste(f"a red {other}", pack, read, recolour="colour") == "render"


def test_described_change_writes_neutral_and_target_from_the_region() -> None:
    vocab = {"shape": ["circle", "star"], "size": ["small", "large"],
             "color": ["red", "green"]}

    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        return {k: {"shape": "circle", "size": "large", "color": "red"}[k] for k in choices}

    current, named = described_change("make it a green star", vocab, read)
    assert (anchor_caption(current), anchor_caption({**current, **named})) == (
        "a large red circle", "a large green star")
    assert described_change("something nice", vocab, read) is None  # names nothing
    assert described_change("a green star", {"color": ["green"]}, read) is None


def _check_accepting_render(n: int, checks: list[int]) -> type:
    """A stand-in for :class:`EditCheck` that accepts the ``n``-th render shown to any of
    its instances, counting the renders in ``checks``."""

    class AcceptsNth:
        def __init__(self, *args: object) -> None:
            pass

        def or_none(self) -> AcceptsNth:
            return self

        def __call__(self, images: torch.Tensor) -> list[bool]:
            verdicts = []
            for _ in range(len(images)):
                checks.append(1)
                verdicts.append(len(checks) == n)
            return verdicts

    return AcceptsNth


def test_step_read_as_asked_tries_the_nearest_steps_first() -> None:
    """The plain step alone, then the other steps in one batch; of those, the first in
    :data:`NEAREST_STEPS` order that reads as asked."""
    rendered: list[list[float]] = []

    def render(steps: list[float]) -> torch.Tensor:
        rendered.append(list(steps))
        return torch.tensor(steps)[:, None]

    def accepts(*steps: float) -> Callable[[torch.Tensor], list[bool]]:
        return lambda images: [float(image) in steps for image in images]

    others = [2.0 * f for f in NEAREST_STEPS]
    image, step, as_asked = step_read_as_asked(render, 2.0, accepts(2.0))
    assert (float(image), step, as_asked, rendered) == (2.0, 2.0, True, [[2.0]])  # as it was
    rendered.clear()
    image, step, as_asked = step_read_as_asked(render, 2.0, accepts(3.0, 1.0))
    assert (float(image), step, as_asked) == (3.0, 3.0, True)  # the nearest that reads so
    assert image.shape == (1, 1) and rendered == [[2.0], others]
    rendered.clear()
    image, step, as_asked = step_read_as_asked(render, 2.0, accepts(1.0))  # a shorter one
    assert (float(image), step, as_asked) == (1.0, 1.0, True)
    rendered.clear()
    image, step, as_asked = step_read_as_asked(render, 2.0, accepts(0.1))  # none: the plain
    assert (float(image), step, as_asked) == (2.0, 2.0, False)
    assert rendered == [[2.0], others]
    assert sorted(NEAREST_STEPS, key=lambda f: abs(math.log(f))) == list(NEAREST_STEPS)
    rendered.clear()
    assert step_read_as_asked(render, 2.0, None)[1:] == (2.0, None) and rendered == [[2.0]]
    # in batches of two: the same choices, and the ladder stops at the batch that has one
    rendered.clear()
    image, step, as_asked = step_read_as_asked(render, 2.0, accepts(1.0, 6.0), batch=2)
    assert (float(image), step, as_asked) == (1.0, 1.0, True) and image.shape == (1, 1)
    assert rendered == [[2.0], others[:2], others[2:4]]
    rendered.clear()
    assert step_read_as_asked(render, 2.0, accepts(0.1), batch=2)[1:] == (2.0, False)
    assert rendered == [[2.0], others[:2], others[2:4], others[4:]]
    # a cancel during the ladder stops it before the next batch
    rendered.clear()
    flag = CancelFlag()

    def cancel_after_first_batch() -> None:
        if len(rendered) > 1:
            flag.set()
        flag.check()

    with pytest.raises(Cancelled):
        step_read_as_asked(render, 2.0, accepts(0.1), batch=2, check=cancel_after_first_batch)
    assert rendered == [[2.0], others[:2]]


def test_ladder_batch_follows_the_generators_cost_on_a_cpu() -> None:
    """The demo pack's ladder in one batch on a CPU, a full-size generator's one image at a
    time (slower per image batched, and several GB more); a GPU batches every size."""
    demo = PackRegistry([REPO_PACKS]).get("demo").get("generator").synthesis_macs()
    full = Generator(1024, 512, 8, channel_multiplier=2).synthesis_macs()
    assert demo < 10**9 < 10**11 < full
    assert ladder_batch(demo, "cpu") == len(NEAREST_STEPS)
    assert ladder_batch(full, "cpu") == 1
    assert ladder_batch(full, torch.device("cuda")) == len(NEAREST_STEPS)
    assert ladder_batch(0, "cpu") == len(NEAREST_STEPS)


def test_edit_check_reads_the_pasted_edit(registry: PackRegistry,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked values from the prompt, the others as the region was read; the read is of the
    frame as the paste shows the edit: the render in the selection, or the user's frame
    plus the change."""
    import engine.methods.guidance as guidance

    pack = registry.get("tiny")
    frame, inversion = torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    region = {"size": "large", "color": "red", "shape": "circle"}

    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        return {k: region[k] for k in choices}

    seen: list[torch.Tensor] = []
    answer = {"size": "large", "color": "green", "shape": "circle"}

    def fake_reads(clip: object, images: torch.Tensor, choices: dict) -> list[dict[str, str]]:
        seen.append(images)
        return [dict(answer) for _ in images]

    monkeypatch.setattr(guidance, "clip_reads", fake_reads)
    edit = torch.full((1, 3, 4, 4), -0.25)
    check = EditCheck("make it green", pack, read, None, frame, inversion, mask, "delta")
    assert check.wanted == answer and check(edit) == [True]
    expected = frame + mask * (edit - inversion)  # the user's frame plus the change
    assert torch.equal(seen[-1], expected)
    assert check(edit.expand(3, -1, -1, -1)) == [True] * 3  # one verdict an image
    answer["shape"] = "square"  # the outline moved: not as asked
    assert check(edit) == [False]
    # a `colour` paste recolours the user's own pixels: their outline cannot move, so
    # only the colour is read (CLIP misreading a recoloured circle as a square is noise)
    colour = EditCheck("make it green", pack, read, None, frame, inversion, mask, "colour")
    assert colour.wanted == {"color": "green"} and list(colour.choices) == ["color"]
    answer = {"color": "green"}
    assert colour(edit) == [True] and torch.equal(seen[-1], expected)
    answer = {"color": "red"}
    assert colour(edit) == [False]
    render = EditCheck("make it green", pack, read, None, frame, inversion, mask, "render")
    render(edit)
    assert torch.equal(seen[-1], frame * (1 - mask) + edit * mask)
    never = EditCheck("something nice", pack, read, None, frame, inversion, mask, "delta")
    calls = len(seen)
    assert never.wanted is None and never(edit) == [False] and len(seen) == calls
    assert never.or_none() is None and check.or_none() is check  # no steps tried for nothing


@pytest.fixture
def trained_clipinverter(registry: PackRegistry, tmp_path: Path) -> PackRegistry:
    """The tiny pack with CLIPInverter networks trained for a step (a fresh registry)."""
    from engine.training.clipinverter import train_clipinverter

    pack = registry.get("tiny")
    train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=1, stage2_steps=1,
                       batch=2, progress=False)
    return PackRegistry([Path(pack.manifest.root).parent])


def test_clipinverter_auto_strength_tries_other_steps(trained_clipinverter: PackRegistry,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    import engine.methods.clipinverter as clipinverter_module

    fresh = trained_clipinverter
    checks: list[int] = []
    # accepts the third render it is shown: strength x 1.5
    monkeypatch.setattr(clipinverter_module, "EditCheck", _check_accepting_render(3, checks))
    method = methods.get("clipinverter")()
    torch.manual_seed(0)  # the same random region for both runs
    auto = method.run(_inputs(fresh, "clipinverter", strength=0.5), lambda *a: None,
                      CancelFlag())
    assert auto.info["strength"] == 0.75 and len(checks) == 1 + len(NEAREST_STEPS)
    assert auto.info["passes"] == 1  # read as asked: no second pass
    torch.manual_seed(0)
    plain = method.run(_inputs(fresh, "clipinverter", strength=0.75, auto_strength=False),
                       lambda *a: None, CancelFlag())
    assert torch.allclose(auto.image, plain.image, atol=1e-5)
    assert len(checks) == 1 + len(NEAREST_STEPS)  # the other steps were drawn as one batch
    assert plain.info["strength"] == 0.75 and plain.info["passes"] == 1


def test_clipinverter_passes_again_where_no_step_reads_as_asked(
        trained_clipinverter: PackRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """No strength of the first pass reads as asked (six renders): the adapter runs again
    on the edit's render, whose second step tried (x 0.75) is accepted; ``passes=1`` keeps
    the first pass's plain edit."""
    import engine.methods.clipinverter as clipinverter_module

    fresh = trained_clipinverter
    method = methods.get("clipinverter")()
    runs = {}
    for passes in (1, 2):
        checks: list[int] = []
        monkeypatch.setattr(clipinverter_module, "EditCheck",
                            _check_accepting_render(1 + len(NEAREST_STEPS) + 2, checks))
        torch.manual_seed(0)
        runs[passes] = method.run(_inputs(fresh, "clipinverter", passes=passes),
                                  lambda *a: None, CancelFlag())
        first = 1 + len(NEAREST_STEPS)  # the first pass's renders, none accepted
        assert len(checks) == {1: first, 2: 2 * first}[passes]
        assert runs[passes].info["passes"] == passes
        assert runs[passes].info["read_as_asked"] is (passes == 2)  # the check's verdict
    torch.manual_seed(0)
    plain = method.run(_inputs(fresh, "clipinverter", auto_strength=False), lambda *a: None,
                       CancelFlag())
    assert torch.allclose(runs[1].image, plain.image, atol=1e-6)
    assert not torch.allclose(runs[2].image, plain.image, atol=1e-4)
    assert plain.info["passes"] == 1  # no check, no second pass, no verdict
    assert "read_as_asked" not in plain.info


def test_global_directions_neutral_is_the_region_as_read(runner: EditRunner) -> None:
    """Without "->", the neutral text describes the selection and the target is the same
    description with the prompt's words; the switch off gives the pack's neutral text."""
    rgba, sel = random_canvas()
    info = runner.run_local(_request(rgba, sel, method="global-directions",
                                     prompt="a green star")).info
    vocab = world_vocab()
    article, size, color, shape = info["neutral"].split()
    assert article == "a" and size in vocab["size"] and color in vocab["color"] \
        and shape in vocab["shape"]
    assert info["target"] == f"a {size} green star"
    params = {**_fast("global-directions"), "neutral_from_region": False}
    info = runner.run_local(_request(rgba, sel, method="global-directions",
                                     prompt="a green star", params=params)).info
    assert info["neutral"] == "a photo"  # the tiny pack names no neutral_prompt
    info = runner.run_local(_request(rgba, sel, method="global-directions",
                                     prompt="a red star -> a green star")).info
    assert info["neutral"] == "a red star"


def test_a_prompt_the_method_rejects_is_an_invalid_request(runner: EditRunner) -> None:
    """Bad input found inside a method reaches the client as INVALID_REQUEST with the
    method's sentence, not as a crashed edit."""
    from protocol.errors import ErrorCode

    rgba, sel = random_canvas()
    with pytest.raises(WordbrushError, match="neutral -> target") as info:
        runner.run_local(_request(rgba, sel, method="global-directions",
                                  prompt=" -> a blue star"))
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_clipinverter_trains_and_edits(registry: PackRegistry, tmp_path: Path) -> None:
    from engine.training.clipinverter import train_clipinverter

    pack = registry.get("tiny")
    summary = train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=2,
                                 stage2_steps=2, batch=4, progress=False)
    assert summary["finished"] and Path(summary["file"]).is_file()
    saved = torch.load(summary["file"], weights_only=True)["opts"]
    errors = saved["gain_calibration"]["val_l1"]
    assert summary["residual_gain"] == saved[GAIN_KEY] == GAIN_GRID[int(np.argmin(errors))]
    fresh = PackRegistry([Path(pack.manifest.root).parent])
    runner = EditRunner(fresh, "cpu")
    rgba, sel = random_canvas(3)
    outcome = runner.run_local(_request(rgba, sel, "clipinverter", params={}))
    pixels = decode_pixels(outcome.patches[0].data, outcome.patches[0].width,
                           outcome.patches[0].height, outcome.patches[0].format)
    out = composite_over(rgba, Patch(pixels, outcome.offset, outcome.patches[0].format))
    assert np.array_equal(out[sel == 0], rgba[sel == 0])
    # strength 0 is the inversion
    inputs = _inputs(fresh, "clipinverter", strength=0.0)
    result = methods.get("clipinverter")().run(inputs, lambda *a: None, CancelFlag())
    assert torch.allclose(result.image, result.inversion, atol=1e-5)
    # strength 1 is the file's gain: with the gain set to 1, strength g gives the same edit
    method = methods.get("clipinverter")()
    torch.manual_seed(0)
    at_one = method.run(_inputs(fresh, "clipinverter", strength=1.0), lambda *a: None,
                        CancelFlag()).image
    nets = pack_networks(fresh.get("tiny"), torch.device("cpu"))
    gain, nets.residual_gain = nets.residual_gain, 1.0
    torch.manual_seed(0)
    at_gain = method.run(_inputs(fresh, "clipinverter", strength=gain), lambda *a: None,
                         CancelFlag()).image
    assert torch.allclose(at_one, at_gain, atol=1e-5)
    # the text is the selection as read, with the prompt's words; or the prompt as typed
    messages: list[str] = []

    def record(step: int, total: int, message: str, preview: object) -> None:
        messages.append(message)

    # the strength, or auto_strength's others; a second pass where none reads as asked
    at = r" at strength (0\.5|0\.75|1|1\.5|2|3)( in 2 passes)?"
    for describe, pattern in ((True, r"edited towards 'a (small|large) red star'" + at),
                              (False, r"edited towards 'a red star'" + at)):
        method.run(_inputs(fresh, "clipinverter", describe_region=describe), record,
                   CancelFlag())
        assert re.fullmatch(pattern, messages[-1]), messages[-1]


def test_optimisers_start_from_clipinverters_edit(registry: PackRegistry,
                                                  tmp_path: Path) -> None:
    """``start=clipinverter``: the optimisation starts from CLIPInverter's edit (the first
    preview is that edit, the message says so), strength 0 is still the inversion;
    ``auto`` starts there only where the pack has CLIPInverter, and asking for it on a
    pack without it is a clear error."""
    from engine.training.clipinverter import train_clipinverter

    for method in OPTIMISERS:  # no CLIPInverter yet: auto inverts, clipinverter is refused
        with pytest.raises(InputRejected, match="start=clipinverter needs"):
            methods.get(method)().run(_inputs(registry, method, start="clipinverter"),
                                      lambda *a: None, CancelFlag())
    pack = registry.get("tiny")
    train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=1, stage2_steps=1,
                       batch=2, progress=False)
    fresh = PackRegistry([Path(pack.manifest.root).parent])
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    # the optimisers start from CLIPInverter's first pass (no second: BENCHMARKS, session 16)
    inputs = _inputs(fresh, "clipinverter", refine=False, passes=1)
    inputs.image = image
    edit = methods.get("clipinverter")().run(inputs, lambda *a: None, CancelFlag())
    for method in OPTIMISERS:
        for start, first in (("clipinverter", "CLIPInverter's edit"), ("auto", "CLIPInverter's"),
                             ("inversion", "inverted")):
            seen: list[tuple[str, torch.Tensor | None]] = []

            def record(step: int, total: int, message: str, preview: torch.Tensor | None,
                       seen: list[tuple[str, torch.Tensor | None]] = seen) -> None:
                seen.append((message, preview))

            inputs = _inputs(fresh, method, start=start, refine=False, space="w")
            inputs.image = image
            out = methods.get(method)().run(inputs, record, CancelFlag())
            message, preview = next(m for m in seen if "; editing towards" in m[0])
            assert message.startswith(first), message
            assert preview is not None
            if start != "inversion":
                assert torch.allclose(preview, edit.image[0], atol=1e-5)
            else:
                assert torch.allclose(preview, edit.inversion[0], atol=1e-5)
            assert torch.allclose(out.inversion, edit.inversion, atol=1e-5)
        inputs = _inputs(fresh, method, start="clipinverter", strength=0.0)
        out = methods.get(method)().run(inputs, lambda *a: None, CancelFlag())
        assert torch.allclose(out.image, out.inversion, atol=1e-5)


def test_space_w_moves_every_row_alike(registry: PackRegistry) -> None:
    from engine.methods.start import optimisation_start

    inputs = _inputs(registry, "paint-by-word", refine=False)
    gen, clip = inputs.pack.get("generator"), inputs.pack.get("clip")
    start = optimisation_start(inputs, inputs.image, inputs.mask,
                               region_reader(clip, inputs.image), lambda *a: None,
                               CancelFlag(), 1)
    rng = torch.Generator().manual_seed(0)
    assert start.offset("w", 0.1, rng).shape == (1, 1, start.w.shape[-1])
    assert start.offset("w+", 0.1, rng).shape == start.w.shape
    assert start.offset("w", 0.0, rng).abs().max() == 0
    assert not start.from_edit
    assert all(torch.equal(a, b) for a, b in zip(start.styles(start.w, 0.5),
                                                 gen.styles(start.w), strict=True))


def test_clipinverter_training_goes_on_when_asked_for_more_steps(registry: PackRegistry,
                                                                 tmp_path: Path) -> None:
    """More adapter steps than a finished run made continue stage 1 from its checkpoint and
    refit the remapper; the same count again only recalibrates."""
    from engine.training.clipinverter import train_clipinverter
    from engine.training.common import Checkpoint

    pack = registry.get("tiny")
    options = {"stage2_steps": 2, "batch": 4, "progress": False}
    train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=2, **options)
    stage1, stage2 = Checkpoint(tmp_path, "clipinverter1"), Checkpoint(tmp_path, "clipinverter2")
    first = stage1.load()
    assert first is not None and "opt" in first and stage1.done_steps() == 2
    remapper_before = stage2.path.stat().st_mtime_ns
    train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=2, **options)
    assert stage2.path.stat().st_mtime_ns == remapper_before  # nothing retrained
    summary = train_clipinverter(pack, tmp_path, torch.device("cpu"), stage1_steps=4,
                                 **options)
    assert summary["finished"] and stage1.done_steps() == 4 and stage2.done_steps() == 2
    assert stage2.path.stat().st_mtime_ns != remapper_before
    later = stage1.load()
    assert later is not None and later["step"] == 4
    moved = [not torch.equal(later["model"][k], first["model"][k]) for k in first["model"]]
    assert any(moved)


def test_pack_names_its_default_method(tmp_path: Path) -> None:
    """A request without a method gets the pack's ``default_method`` where the pack can run
    it; otherwise the engine's order (CLIPInverter first) among the methods it can run."""
    import json

    folder = make_pack(tmp_path / "p" / "tiny")
    runner = EditRunner(PackRegistry([tmp_path / "p"]), "cpu")
    assert runner.default_method("tiny") == "paint-by-word"  # no CLIPInverter files
    manifest = json.loads((folder / "pack.json").read_text())
    manifest["default_method"] = "feu"  # feu needs precomputed files the pack lacks
    (folder / "pack.json").write_text(json.dumps(manifest))
    runner = EditRunner(PackRegistry([tmp_path / "p"]), "cpu")
    assert runner.default_method("tiny") == "paint-by-word"
    manifest["default_method"] = "latent-optimization"
    (folder / "pack.json").write_text(json.dumps(manifest))
    runner = EditRunner(PackRegistry([tmp_path / "p"]), "cpu")
    assert runner.default_method("tiny") == "latent-optimization"


def test_a_packs_derived_objects_are_built_once_and_kept_with_it(registry: PackRegistry
                                                                 ) -> None:
    """Method networks live with their pack (``LoadedPack.derived``), not in a process-wide
    table keyed by ``id()``, which a later pack could reuse."""
    pack = registry.get("tiny")
    calls: list[int] = []

    def build() -> object:
        calls.append(1)
        return object()

    first = pack.derived("a test object", build)
    assert pack.derived("a test object", build) is first and calls == [1]
    assert PackRegistry([Path(pack.manifest.root).parent]).get("tiny").derived(
        "a test object", build) is not first and calls == [1, 1]


def test_style_direction_keeps_the_unnamed_changes_out() -> None:
    """With ``keep``, the channel weights are orthogonal to each kept change's style
    direction, so the edit's first-order CLIP effect has no part along it; without, as
    StyleCLIP's."""
    from engine.methods.directions import StyleDirections

    g = torch.Generator().manual_seed(0)
    fs3 = torch.nn.functional.normalize(torch.randn(60, 8, generator=g), dim=1)
    directions = StyleDirections(fs3, torch.zeros(60, dtype=torch.long), torch.arange(60),
                                 torch.ones(60))
    edit, keep = torch.randn(8, generator=g), torch.randn(3, 8, generator=g)
    plain, _ = directions.style_direction(edit, 0.0)
    kept, n = directions.style_direction(edit, 0.0, keep)
    assert n == 60 and float(kept.abs().max()) == pytest.approx(1.0)
    assert float(((fs3 @ keep.T).T @ plain).abs().max()) > 0.1
    assert torch.allclose((fs3 @ keep.T).T @ kept, torch.zeros(3), atol=1e-4)
    assert torch.equal(directions.style_direction(edit, 0.0, None)[0], plain)


def test_unnamed_changes_are_the_values_the_prompt_leaves(registry: PackRegistry) -> None:
    from engine.methods.guidance import unnamed_changes

    pack = registry.get("tiny")
    region = {"size": "large", "color": "red", "shape": "circle"}

    def read(choices: dict[str, list[str]]) -> dict[str, str]:
        return {k: region[k] for k in choices}

    vocab = world_vocab()
    assert unnamed_changes("a green star", pack, read) == [
        ("a large green star", f"a {size} green star") for size in vocab["size"]
        if size != "large"]
    resized = unnamed_changes("make it small", pack, read)
    assert len(resized) == len(vocab["color"]) - 1 + len(vocab["shape"]) - 1
    assert all(before == "a small red circle" for before, _ in resized)
    assert unnamed_changes("something nice", pack, read) == []


@pytest.mark.parametrize("method", ["global-directions", "feu"])
def test_direction_methods_auto_alpha_tries_other_steps(runner: EditRunner, method: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the check does not accept α, the nearest step it accepts is rendered: the same
    image as asking for that α with the switch off."""
    import engine.methods.directions as directions_module

    checks: list[int] = []
    # accepts the second render it is shown: α x 0.75
    monkeypatch.setattr(directions_module, "EditCheck", _check_accepting_render(2, checks))
    rgba, sel = random_canvas()

    def edit(**params: object) -> tuple[dict[str, object], bytes]:
        outcome = runner.run_local(_request(rgba, sel, method=method, prompt="a green star",
                                            params={**_fast(method), **params}))
        return outcome.info, outcome.patches[0].data

    auto_info, auto_patch = edit(alpha=4.0, auto_alpha=True)  # set both: the ladder runs
    assert auto_info["alpha"] == 3.0 and len(checks) == 1 + len(NEAREST_STEPS)
    plain_info, plain_patch = edit(alpha=3.0, auto_alpha=False)
    assert plain_info["alpha"] == 3.0 and len(checks) == 1 + len(NEAREST_STEPS)
    assert bytes(auto_patch) == bytes(plain_patch)


def test_an_edit_its_check_does_not_read_as_asked_is_warned_of(
        runner: EditRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass methods report their check's verdict (``read_as_asked``); the engine
    turns a no into a warning the editors show. Unchecked (a prompt naming none of the
    pack's words): no verdict, no warning."""
    import engine.methods.directions as directions_module

    rgba, sel = random_canvas()

    def edit(prompt: str, accepted_render: int) -> dict[str, object]:
        checks: list[int] = []
        monkeypatch.setattr(directions_module, "EditCheck",
                            _check_accepting_render(accepted_render, checks))
        return runner.run_local(_request(rgba, sel, method="global-directions",
                                         prompt=prompt)).info

    def warned(info: dict[str, object]) -> bool:
        warnings = info["warnings"]
        assert isinstance(warnings, list)
        return any("does not read the edit as asked" in w for w in warnings)

    never = edit("a green star", 0)  # no render is ever the 0th: none reads as asked
    assert never["read_as_asked"] is False and warned(never)
    first = edit("a green star", 1)
    assert first["read_as_asked"] is True and not warned(first)
    monkeypatch.undo()
    unchecked = runner.run_local(_request(rgba, sel, method="global-directions",
                                          prompt="something nice")).info
    assert "read_as_asked" not in unchecked and not warned(unchecked)


@pytest.mark.parametrize("method", ["global-directions", "feu"])
def test_direction_methods_keep_unnamed_changes_out(runner: EditRunner, method: str) -> None:
    rgba, sel = random_canvas()
    for keep, kept_out in ((True, len(world_vocab()["size"]) - 1), (False, 0)):
        params = {**_fast(method), "keep_unnamed": keep}
        info = runner.run_local(_request(rgba, sel, method=method, prompt="a green star",
                                         params=params)).info
        assert info["changes_kept_out"] == kept_out


def test_the_check_reads_the_edit_as_it_will_be_pasted(runner: EditRunner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The ladder's check is built for the paste the request asked for (a forced
    ``render`` can move the outline, so it is read in full), else the method's advice."""
    import engine.methods.directions as directions_module

    seen: list[str] = []
    real = directions_module.EditCheck

    def recording(*args: object) -> object:
        seen.append(str(args[-1]))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(directions_module, "EditCheck", recording)
    rgba, sel = random_canvas()
    for paste in ("render", "delta", "auto"):
        runner.run_local(_request(rgba, sel, method="feu", prompt="a green star",
                                  params={**_fast("feu"), "paste": paste}))
    assert seen[:2] == ["render", "delta"] and seen[2] in ("render", "delta", "colour")
    assert MethodInputs(image=None, mask=None, prompt="", params={}, seed=0, pack=None,
                        paste="render").pasted_as("colour") == "render"
    assert MethodInputs(image=None, mask=None, prompt="", params={}, seed=0,
                        pack=None).pasted_as("colour") == "colour"


def test_latent_optimisation_moves_on_every_step(registry: PackRegistry) -> None:
    """Each step takes the schedule's rate at its middle: at its end the last step's is 0,
    so one step gave back the start unchanged."""
    inputs = _inputs(registry, "latent-optimization", steps=1, jitter=0.0, project="off")
    out = methods.get("latent-optimization")().run(inputs, lambda *a: None, CancelFlag())
    assert out.inversion is not None
    assert (out.image - out.inversion).abs().max() > 1e-3


@pytest.mark.parametrize("method", OPTIMISERS)
def test_variations_share_the_start(runner: EditRunner, method: str) -> None:
    """The seed changes nothing of an optimiser's start (the inversion, refined): a
    request's variations make it once, and each comes out as that seed's edit alone."""
    rgba, sel = random_canvas(1)
    params = {**_fast(method), "refine": True}
    messages: list[str] = []
    both = runner.run_local(_request(rgba, sel, method, variations=2, params=params),
                            lambda s, t, text, p: messages.append(text))
    assert sum(m.startswith("variation 1/2: inverting") for m in messages) > 1
    assert sum(m.startswith("variation 2/2: inverting") for m in messages) == 1  # done
    for k, seed in enumerate((7, 8)):
        alone = runner.run_local(_request(rgba, sel, method, seed=seed, params=params))
        assert alone.patches[0].data == both.patches[k].data
