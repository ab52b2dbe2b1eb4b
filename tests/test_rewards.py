from __future__ import annotations

import numpy as np
import pytest

from palm.errors import InputError, RewardError
from palm.pretrain import train_tokenizer
from palm.rewards import resolve, score, spec_problems
from palm.tasks import get_task

PROMPT = get_task("support").prompts("eval", 1, seed=5)[0]
FACTS = PROMPT.facts


@pytest.mark.parametrize("name", ["brevity", "informativeness", "warmth"])
def test_builtin_rewards_stay_in_unit_interval(name):
    fn = resolve(name)
    responses = ["", "ok", " ".join(FACTS), "word " * 200, "Thank you!! " * 30]
    values = score(fn, [PROMPT.text] * len(responses), responses)
    assert fn.name == name
    assert values.shape == (len(responses),)
    assert np.all((values >= 0) & (values <= 1))


def test_brevity_prefers_shorter_replies():
    values = resolve("brevity")(
        [PROMPT.text] * 4,
        ["Done.", "It shipped yesterday, thanks.", "x " * 30, "x " * 90],
    )
    assert values[0] == 1.0
    assert values[0] >= values[1] > values[2] > values[3] == 0.0


def test_brevity_gives_an_empty_reply_nothing():
    assert resolve("brevity")([PROMPT.text], ["   "])[0] == 0.0


def test_informativeness_counts_stated_facts():
    fn = resolve("informativeness")
    replies = ["Hello.", f"See {FACTS[0]}.", "Here: " + ", ".join(FACTS) + "."]
    values = fn([PROMPT.text] * 3, replies)
    assert values.tolist() == [0.0, pytest.approx(1 / len(FACTS)), 1.0]


def test_informativeness_matches_whole_facts_ignoring_case():
    prompt = "Record: shipped March 3 | order #4163\nCustomer: hi\nAgent:"
    fn = resolve("informativeness")
    values = fn([prompt] * 3, ["march 3 and #4163", "March 30", "#41634"])
    assert values.tolist() == [1.0, 0.0, 0.0]


def test_informativeness_needs_support_prompts():
    with pytest.raises(RewardError, match="informativeness: sample 1: .*Record"):
        resolve("informativeness")([PROMPT.text, "no record"], ["a", "b"])


def test_warmth_orders_warm_neutral_cold():
    values = resolve("warmth")(
        [PROMPT.text] * 3,
        [
            "Thank you so much, I am happy to help! Have a wonderful day!",
            "The order shipped on Monday.",
            "Your complaint is rejected. Stop wasting our time.",
        ],
    )
    assert values[0] > values[1] > values[2]
    assert values[1] == pytest.approx(0.5)


def test_resolve_unknown_reward_lists_builtins():
    with pytest.raises(InputError, match="unknown reward 'kindness'.*brevity"):
        resolve("kindness")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("python:os", "not of the form python:module.path:function"),
        ("python:no_such_module_here:f", "not importable"),
        ("hf-classifier:", "names no model folder"),
        ("hf-classifier:/no/such/dir", "is not a folder"),
    ],
)
def test_spec_problems_reports_bad_syntax(spec, message):
    (problem,) = spec_problems(spec)
    assert message in problem


def test_resolve_python_callable(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def length_share(prompts, responses):\n"
        "    return [min(len(r), 10) / 10 for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = resolve("python:my_rewards:length_share")
    assert fn.name == "python:my_rewards:length_share"
    assert fn(["p", "p"], ["abc", "a" * 50]).tolist() == [0.3, 1.0]


def test_resolve_python_missing_function(tmp_path, monkeypatch):
    (tmp_path / "other_rewards.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match="has no callable 'f'"):
        resolve("python:other_rewards:f")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.5, 1.5], r"gave 1\.5 for sample 1"),
        ([float("nan"), 0.2], r"gave nan for sample 0"),
        ([-0.1, 0.2], r"gave -0\.1 for sample 0"),
        ([0.5], r"returned shape \(1,\) for 2 samples"),
    ],
    ids=["above-one", "nan", "negative", "short"],
)
def test_score_rejects_bad_reward_output(values, message):
    def bad(prompts, responses):
        return values

    with pytest.raises(RewardError, match=f"reward 'bad' {message}"):
        score(bad, ["p", "q"], ["a", "b"])


def test_reward_fn_accepts_trl_keywords():
    fn = resolve("brevity")
    values = fn(prompts=["p"], completions=["Short."], completion_ids=[[1]])
    assert values.tolist() == [1.0]
    assert fn.__name__ == "brevity"


def test_hf_classifier_scores_label_probability(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    # A tiny random classifier: two labels, 2 layers of width 16, made here.
    tokenizer = train_tokenizer(["good service", "bad service"] * 20, vocab_size=300)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=2,
        id2label={0: "NEG", 1: "POS"},
        label2id={"NEG": 0, "POS": 1},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    responses = ["good service", "bad", "good good service"]
    pos = resolve(f"hf-classifier:{tmp_path}")([""] * 3, responses)
    neg = resolve(f"hf-classifier:{tmp_path}:NEG")([""] * 3, responses)
    assert np.all((pos > 0) & (pos < 1))
    np.testing.assert_allclose(pos + neg, 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="no label 'MAYBE'.*NEG, POS"):
        resolve(f"hf-classifier:{tmp_path}:MAYBE")
