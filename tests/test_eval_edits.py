"""The methods' harness (`wordbrush eval edits`) on a tiny random pack: its invariants and
its report. (Rates are judged on the real pack by the full run; see BENCHMARKS.md.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.evaluation.edits import (
    KINDS,
    PROMPT_LINE_STRIDE,
    REPORT_FIRST_PROMPT_SCENE,
    PromptLine,
    cases_from_prompts,
    evaluate_edits,
    format_report,
    independent_cases,
    make_cases,
    overlaps_report,
    read_prompt_file,
)
from engine.packs import PackRegistry
from engine.runner import EditRunner
from engine.world import HELDOUT_TEMPLATES, TRAIN_TEMPLATES, caption, choices_rng
from engine.world.captions import template_fields
from tests.support.packs import make_pack

FAST = {"steps": 1, "views": 1}


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("packs")
    make_pack(folder / "tiny", judge=True)
    return folder


def test_cases_ask_for_a_real_change() -> None:
    cases = make_cases(2, KINDS)
    assert [c.kind for c in cases] == [k for k in KINDS for _ in range(2)]
    for c in cases:
        assert c.target and all(c.truth.get(k) != v for k, v in c.target.items())
        assert c.selection.max() == 255 and len(c.scene.objects) >= 2
        for key in c.target:
            assert c.target[key] in c.prompt


def test_a_kinds_scenes_do_not_depend_on_the_other_kinds() -> None:
    def key(case) -> tuple:
        return (case.prompt, case.box, case.truth["shape"], case.truth["color"])

    alone = [key(c) for c in make_cases(3, ("shape",))]
    among = [key(c) for c in make_cases(3, ("two", "color", "shape")) if c.kind == "shape"]
    assert alone == among
    assert [key(c) for c in make_cases(2, ("shape",))] == alone[:2]


def test_the_harness_choices_are_not_tied_to_the_scene() -> None:
    """The object count, the selected object and the ask come from a stream of their own:
    drawn from the renderer's stream, the count decided the background (two-object scenes
    were always beige or grey, three-object ones mint or pink)."""
    cases = make_cases(20, ("color", "size"))
    backgrounds_by_count = {n: {c.truth["background"] for c in cases if len(c.scene.objects) == n}
                            for n in (2, 3)}
    assert all(len(seen) >= 3 for seen in backgrounds_by_count.values()), backgrounds_by_count
    seed = cases[0].scene_seed
    assert choices_rng(seed).random() != np.random.default_rng(seed).random()


def test_validation_scenes_are_not_the_reports(pack_dir: Path) -> None:
    """``--first-scene`` draws the kinds from another block of held-out seeds, and the report
    says which block it ran on."""
    report_seeds = {c.scene_seed for c in make_cases(3, KINDS)}
    other = make_cases(3, KINDS, first_index=95_000)
    assert [c.kind for c in other] == [k for k in KINDS for _ in range(3)]
    assert not report_seeds & {c.scene_seed for c in other}
    report_independent = {c.scene_seed for c in independent_cases(3)}
    assert not report_independent & {c.scene_seed for c in independent_cases(3, first_index=1)}
    runner = EditRunner(PackRegistry([pack_dir]), "cpu")
    report = evaluate_edits(runner, "tiny", ["paint-by-word"], ["shape"], n_per_kind=1,
                            n_independent=0, params=FAST, progress=False, first_scene=95_000)
    assert report["first_scene"] == 95_000
    assert "from scene 95,000 (not the report's)" in format_report(report)
    # a block that shares scenes with the report's says so
    assert not overlaps_report(95_000, 60) and not overlaps_report(0, 60)
    assert overlaps_report(50_001, 20) and overlaps_report(60_000, 20)
    assert "(overlapping the report's)" in format_report({**report, "first_scene": 60_000})


def test_built_in_prompts_use_held_out_templates() -> None:
    def texts(templates: tuple[str, ...], case) -> set[str]:  # type: ignore[no-untyped-def]
        words = {**{k: v for k, v in case.truth.items() if v}, **case.target}
        return {caption(words, t) for t in templates if set(template_fields(t)) <= set(words)}

    for case in make_cases(3, KINDS):
        assert case.prompt in texts(HELDOUT_TEMPLATES, case)
        assert case.prompt not in texts(TRAIN_TEMPLATES, case)


PROMPTS = (
    '{"prompt": "a green triangle", "target": {"color": "green", "shape": "triangle"}, '
    '"region": "object1"}\n'
    "# a comment, then a blank line\n\n"
    '{"prompt": "make it small", "target": {"size": "small"}, "region": "all"}\n'
)


def test_prompt_file_cases(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(PROMPTS)
    lines = read_prompt_file(path)
    assert [(p.label, p.region) for p in lines] == [("line 1", "object1"), ("line 4", "all")]
    cases = cases_from_prompts(lines, 2)
    assert [c.kind for c in cases] == ["line 1", "line 1", "line 4", "line 4"]
    for c in cases[:2]:
        assert c.index == 1 and c.prompt == "a green triangle"
        assert c.truth["color"] != "green" and c.truth["shape"] != "triangle"
        assert c.selection.min() == 0 and c.selection.max() == 255
    for c in cases[2:]:
        assert len(c.scene.objects) == 1 and (c.selection == 255).all()
        assert c.truth["size"] == "large" and c.target == {"size": "small"}


def test_a_prompt_lines_scenes_are_its_own(tmp_path: Path) -> None:
    """A line draws from its own block of seeds: its scenes do not depend on the lines
    before it, and fewer scenes are the first of more."""
    path = tmp_path / "prompts.jsonl"
    path.write_text(PROMPTS)
    first, second = read_prompt_file(path)
    both = cases_from_prompts([first, second], 3)
    alone = cases_from_prompts([second], 3, first_index=REPORT_FIRST_PROMPT_SCENE
                               + PROMPT_LINE_STRIDE)
    assert [c.scene_seed for c in both[3:]] == [c.scene_seed for c in alone]
    fewer = cases_from_prompts([first, second], 2)
    assert [c.scene_seed for c in fewer] == [c.scene_seed for c in both[:2] + both[3:5]]
    with pytest.raises(ValueError, match="at most 500 scenes a line"):
        cases_from_prompts([first], 501)


@pytest.mark.parametrize(("line", "error"), [
    ("not json", "line 1: not JSON"),
    ('["a list"]', "an object"),
    ('{"prompt": "", "target": {"color": "red"}, "region": "all"}', "'prompt'"),
    ('{"prompt": "x", "target": {"texture": "rough"}, "region": "all"}', "texture"),
    ('{"prompt": "x", "target": {"color": "teal"}, "region": "all"}', "'teal' is not a color"),
    ('{"prompt": "x", "target": {"color": "red"}, "region": "object7"}', "'region'"),
    ('{"prompt": "x", "target": {"color": "red"}, "region": "all", "n": 3}', "unknown keys"),
    ('{"prompt": "a green triangle", "target": {"color": "green"}, "region": "object0"}',
     "asks for {'shape': 'triangle'}, which the target does not"),
    ('{"prompt": "a red star", "target": {"color": "blue"}, "region": "object0"}',
     "asks for .*'color': 'red'"),
    ('{"prompt": "a large one", "target": {"size": "large"}, "region": "all"}',
     "already large"),
])
def test_a_bad_prompt_line_is_named(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=error):
        read_prompt_file(path)


def test_harness_keeps_the_invariants(pack_dir: Path) -> None:
    runner = EditRunner(PackRegistry([pack_dir]), "cpu")
    report = evaluate_edits(runner, "tiny", ["paint-by-word"], ["color", "size"], n_per_kind=1,
                            n_independent=1, params=FAST, progress=False)
    s = report["methods"]["paint-by-word"]
    assert s["outside_changed_px"] == 0
    assert s["unselected_unchanged"] == 1.0
    assert s["independent"]["outside_changed_px"] == 0
    assert {"color", "size"} <= set(s)
    assert s["outside_mae"] == 0.0
    # both kinds ask one attribute: AMA-single is their reached rate, no AMA-multiple
    assert s["ama_single"] == (s["color"]["reached"] + s["size"]["reached"]) / 2
    assert s["ama_multiple"] is None
    for case in s["cases"][:2]:
        assert 0.0 <= case["l1"] <= 1.0 and -1.0 <= case["clip_similarity"] <= 1.0
    assert abs(s["cmp"] - sum((1 - c["l1"]) * c["clip_similarity"] for c in s["cases"][:2]) / 2
               ) < 1e-3
    seconds = sorted(c["seconds"] for c in s["cases"][:2])
    assert seconds[0] - 1e-3 <= s["seconds_median"] <= s["seconds_p90"] <= seconds[-1] + 1e-3
    assert "paint-by-word" in format_report(report) and "slowest tenth" in format_report(report)
    # the JSON's cases reproduce the table: the independent ones are marked, and each
    # carries its target, its preservation figures and its CMP
    built_in = [c for c in s["cases"] if not c["independent"]]
    assert [c["kind"] for c in built_in] == ["color", "size"]
    assert len(s["cases"]) == 3 and s["cases"][2]["independent"]
    assert s["color"]["reached"] == float(built_in[0]["reached"])
    assert all(c["outside_changed_px"] == 0 and c["unselected_unchanged"] for c in s["cases"])
    assert abs(s["cmp"] - sum(c["cmp"] for c in built_in) / 2) < 1e-3
    assert built_in[0]["target"] == {"color": built_in[0]["target"]["color"]}
    assert s["independent"]["unselected_unchanged"] == 1.0
    assert "unselected objects unchanged 100.0%" in format_report(report)


def test_an_edit_is_the_same_whichever_kinds_run(pack_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit's seed is its scene's: a run of one kind makes the very edits (jitter
    included) that a run of several makes on that kind's scenes."""
    import engine.evaluation.edits as edits_module

    runner = EditRunner(PackRegistry([pack_dir]), "cpu")
    real_run_case = edits_module.run_case
    seen: dict[tuple[str, str], int] = {}

    def recording(runner, judge, case, method, pack, params, seed, spec):  # type: ignore[no-untyped-def]
        seen[(case.kind, case.prompt)] = seed
        return real_run_case(runner, judge, case, method, pack, params, seed, spec)

    monkeypatch.setattr(edits_module, "run_case", recording)

    def size_seeds(kinds: list[str]) -> dict[tuple[str, str], int]:
        seen.clear()
        evaluate_edits(runner, "tiny", ["paint-by-word"], kinds, n_per_kind=2,
                       n_independent=0, params=FAST, progress=False, seed=5)
        return {k: v for k, v in seen.items() if k[0] == "size"}

    alone = size_seeds(["size"])
    assert len(alone) == 2 and alone == size_seeds(["color", "size"])
    assert len(set(alone.values())) == 2


def test_first_scene_moves_a_prompt_files_scenes(pack_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.evaluation.edits as edits_module

    runner = EditRunner(PackRegistry([pack_dir]), "cpu")
    seen: list[int] = []

    def recording(runner, judge, case, method, pack, params, seed, spec):  # type: ignore[no-untyped-def]
        seen.append(case.scene_seed)
        return real_run_case(runner, judge, case, method, pack, params, seed, spec)

    real_run_case = edits_module.run_case
    monkeypatch.setattr(edits_module, "run_case", recording)
    lines = [PromptLine("a green star", {"color": "green", "shape": "star"}, "object0",
                        "line 1")]

    def scenes(first_scene: int | None) -> set[int]:
        seen.clear()
        evaluate_edits(runner, "tiny", ["paint-by-word"], n_per_kind=2, n_independent=1,
                       params=FAST, progress=False, prompts=lines, first_scene=first_scene)
        return set(seen)

    report, moved = scenes(None), scenes(95_000)
    assert len(report) == 3 and len(moved) == 3 and not report & moved


def test_cli_eval_edits_json(pack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--pack", "tiny", "--pack-dir", str(pack_dir), "--methods",
                 "paint-by-word", "--prompts", "shape", "--n", "1", "--independent", "0",
                 "--param", "steps=1", "--param", "views=1", "--json", "--device", "cpu",
                 "--first-scene", "95000"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["methods"]["paint-by-word"]["shape"]["n"] == 1
    assert report["first_scene"] == 95_000


def test_cli_eval_with_a_prompt_file_writes_json(pack_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(PROMPTS)
    out = tmp_path / "report.json"
    code = main(["eval", "edits", "--pack", "tiny", "--pack-dir", str(pack_dir), "--methods",
                 "paint-by-word", "--prompts", str(prompts), "--n", "1", "--independent", "0",
                 "--param", "steps=1", "--param", "views=1", "--json", str(out),
                 "--device", "cpu"])
    assert code == 0
    table = capsys.readouterr().out
    assert "'a green triangle'" in table and f"wrote {out}" in table
    report = json.loads(out.read_text())
    s = report["methods"]["paint-by-word"]
    assert s["kinds"] == ["line 1", "line 4"] and s["outside_changed_px"] == 0
    assert report["prompts"]["line 4"]["region"] == "all"


def test_cli_eval_rejects_a_bad_prompt_file(pack_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "x", "target": {"color": "teal"}, "region": "all"}\n')
    assert main(["eval", "edits", "--pack", "tiny", "--pack-dir", str(pack_dir),
                 "--prompts", str(prompts)]) == 1
    assert "line 1" in capsys.readouterr().err


def test_cli_eval_rejects_unknown_kinds(pack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "edits", "--pack", "tiny", "--pack-dir", str(pack_dir),
                 "--prompts", "texture"]) == 1
    assert "--prompts" in capsys.readouterr().err


def test_cli_eval_pack_prints_every_gate(pack_dir: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    code = main(["eval", "pack", "--pack", "tiny", "--pack-dir", str(pack_dir), "--n", "8",
                 "--samples", "20", "--json", "--device", "cpu"])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["passed"] else 2)
    names = [g["name"] for g in report["gates"]]
    for key in ("shape", "color", "size", "background"):
        assert any(key in n and "judge accuracy" in n for n in names)
        assert any(key in n and "CLIP zero-shot" in n for n in names)
        assert any(key in n and "independent" in n for n in names)
    assert any("PSNR" in n for n in names) and any("samples" in n for n in names)
    ceiling = report["figures"]["samples_ceiling_encoded_frames_one_w"]
    assert 0 <= ceiling["confident"] <= 1 and ceiling["rarest_share_ratio"] >= 0


def test_cli_eval_rejects_a_param_no_chosen_method_takes(
        pack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--pack", "tiny", "--pack-dir", str(pack_dir), "--methods",
                 "paint-by-word", "--prompts", "shape", "--n", "1", "--param", "views=lots",
                 "--device", "cpu"])
    assert code != 0
    assert "'views' must be an integer" in capsys.readouterr().err


def test_cli_eval_rejects_a_param_one_chosen_method_does_not_take(
        pack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before the first edit, not when the run reaches the method that refuses it."""
    code = main(["eval", "--pack", "tiny", "--pack-dir", str(pack_dir), "--methods",
                 "paint-by-word,global-directions", "--prompts", "shape", "--n", "1",
                 "--param", "views=1", "--device", "cpu"])
    assert code != 0
    err = capsys.readouterr().err
    assert "--param views: global-directions does not take it" in err
    assert "eval paint-by-word" not in err  # no edit ran
