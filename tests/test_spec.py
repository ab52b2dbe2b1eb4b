from __future__ import annotations

import json
from pathlib import Path

import pytest

from palm.errors import SpecError
from palm.pretrain import PretrainSettings
from palm.spec import BuildSpec, load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

MINIMAL = """
name = "t"
[[objectives]]
name = "brevity"
[[objectives]]
name = "warmth"
"""


def test_load_spec_reads_the_examples():
    tiny = load_spec(EXAMPLES / "tiny.toml")
    support = load_spec(EXAMPLES / "support.toml")
    assert tiny.objective_names == ("brevity", "informativeness")
    assert support.objective_names == ("brevity", "informativeness", "warmth")
    assert tiny.model.is_bundled
    assert tiny.model.pretrain == PretrainSettings()
    assert support.cover.solver == "exact"


def test_parse_spec_fills_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.task == "support"
    assert spec.objectives[0].reward == "brevity"
    assert spec.training.target_modules == "all-linear"
    assert spec.cover.budget is None


@pytest.mark.parametrize("example", ["tiny.toml", "support.toml"])
def test_spec_round_trips_through_json(example):
    spec = load_spec(EXAMPLES / example)
    data = json.loads(json.dumps(spec.to_dict()))
    assert BuildSpec.from_dict(data) == spec


def test_spec_round_trip_keeps_lists_budget_and_paths(tmp_path):
    (tmp_path / "base").mkdir()
    text = MINIMAL + (
        '[model]\nbase = "base"\n'
        '[training]\ntarget_modules = ["q_proj", "v_proj"]\n'
        "[cover]\nbudget = 3\n"
    )
    spec = parse_spec(text, base_dir=tmp_path)
    assert spec.model.base == str((tmp_path / "base").resolve())
    assert spec.model.pretrain is None
    assert spec.training.target_modules == ("q_proj", "v_proj")
    assert BuildSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_with_three_mistakes_reports_all_three():
    text = MINIMAL + (
        "[grid]\nalpah = 0.3\nmu = 1.0\n"
        "[training]\nbatch_size = 6\nnum_generations = 4\n"
        '[cover]\nsolver = "fastest"\n'
    )
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="three.toml")
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert "grid.alpah: unknown key; did you mean 'alpha'?" in problems
    assert any("training.batch_size: 6 is not a multiple of" in p for p in problems)
    assert any("use 8" in p for p in problems)
    assert "cover.solver: 'fastest' must be one of greedy, exact" in problems
    assert str(caught.value).startswith("three.toml: 3 problems: (1)")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[grid]\nalpha = 1.5\n", "grid.alpha: 1.5 must lie strictly between 0 and 1"),
        ("[grid]\nmu = 0\n", "grid.mu: 0.0 must be above 0"),
        ("[cover]\nepsilon = 1.0\n", "cover.epsilon: 1.0 must lie in [0, 1)"),
        ("[cover]\ndelta = -0.1\n", "cover.delta: -0.1 must be 0 or more"),
        ("[cover]\nbudget = 0\n", "cover.budget: 0 must be 1 or more"),
        ("[training]\nsteps = 'ten'\n", "training.steps: 'ten' is not an integer"),
        ("[training]\nsteps = true\n", "training.steps: True is not an integer"),
        ("[training]\nnum_generations = 1\n", "num_generations: 1 must be 2 or more"),
        ("[training]\nlora_dropout = 1\n", "lora_dropout: 1.0 must lie in [0, 1)"),
        ("[training]\ntarget_modules = []\n", "target_modules: () must be a non-empty"),
        ("[evaluation]\ntop_p = 0\n", "evaluation.top_p: 0.0 must lie in (0, 1]"),
        ("[model.pretrain]\nheads = 3\n", "model.pretrain.heads: 3 does not divide"),
        ("[model.pretrain]\nstep = 3\n", "did you mean 'steps'?"),
        (
            '[model]\nbase = "no/such/folder"\n',
            "is neither a bundled model (support) nor an existing folder",
        ),
        ("colour = 1\n", "colour: unknown key"),
        ("seed = -1\n", "seed: -1 must be 0 or more"),
        ('task = "chess"\n', "task: 'chess' is unknown; use one of support"),
    ],
)
def test_spec_problem_messages(extra, message):
    # Top-level keys must precede the tables, so the extra text goes first.
    with pytest.raises(SpecError) as caught:
        parse_spec(extra + MINIMAL if "[" not in extra else MINIMAL + extra)
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_spec_needs_two_unique_objectives():
    one = 'name = "t"\n[[objectives]]\nname = "brevity"\n'
    with pytest.raises(SpecError, match="objectives: 1 given; PALM needs 2 or more"):
        parse_spec(one)
    twice = one + '[[objectives]]\nname = "brevity"\n'
    with pytest.raises(SpecError, match="names brevity repeat"):
        parse_spec(twice)


def test_spec_checks_reward_syntax_without_importing():
    text = MINIMAL.replace(
        'name = "warmth"', 'name = "custom"\nreward = "python:no_such_pkg_xyz:f"'
    )
    with pytest.raises(SpecError, match=r"objectives\[1\]\.reward: .*not importable"):
        parse_spec(text)
    text = MINIMAL.replace('name = "warmth"', 'name = "kind"')
    with pytest.raises(SpecError, match="unknown reward 'kind'; use a built-in"):
        parse_spec(text)


def test_spec_classifier_path_is_relative_to_the_spec_file(tmp_path):
    (tmp_path / "clf").mkdir()
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(
        MINIMAL.replace(
            'name = "warmth"', 'name = "pos"\nreward = "hf-classifier:clf:POS"'
        )
    )
    spec = load_spec(spec_file)
    assert spec.objectives[1].reward == f"hf-classifier:{tmp_path / 'clf'}:POS"


def test_spec_pretrain_settings_only_for_the_bundled_model(tmp_path):
    text = MINIMAL + f'[model]\nbase = "{tmp_path}"\n[model.pretrain]\nsteps = 50\n'
    with pytest.raises(SpecError, match="model.pretrain: settings apply only"):
        parse_spec(text)


def test_spec_rejects_bad_toml_and_missing_name():
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_spec("name = ")
    with pytest.raises(SpecError, match="name: missing"):
        parse_spec(MINIMAL.replace('name = "t"', ""))


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "none.toml")


def test_reward_functions_resolves_every_objective():
    functions = parse_spec(MINIMAL).reward_functions()
    assert [f.name for f in functions] == ["brevity", "warmth"]
