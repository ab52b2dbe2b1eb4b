from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palm.errors import InputError
from palm.rewards import resolve
from palm.tasks import Prompt, get_task, task_names
from palm.tasks.support import AGENT_CUE, ReplyStyle, compose_reply, split_of

TASK = get_task("support")


def test_get_task_knows_support():
    assert "support" in task_names()
    assert TASK.name == "support"
    assert TASK.default_objectives == ("brevity", "informativeness", "warmth")


def test_get_task_unknown_name_lists_known():
    with pytest.raises(InputError, match="unknown task 'nope'.*support"):
        get_task("nope")


def test_support_prompts_are_deterministic():
    assert TASK.prompts("train", 20, seed=3) == TASK.prompts("train", 20, seed=3)
    assert TASK.prompts("train", 20, seed=3) != TASK.prompts("train", 20, seed=4)
    assert TASK.corpus(20, seed=1) == TASK.corpus(20, seed=1)


def test_support_splits_are_disjoint_and_distinct():
    train = [p.text for p in TASK.prompts("train", 2000)]
    held_out = [p.text for p in TASK.prompts("eval", 500)]
    assert len(set(train)) == 2000
    assert len(set(held_out)) == 500
    assert not set(train) & set(held_out)


def test_support_corpus_comes_from_train_split_only():
    for text in TASK.corpus(300):
        prompt = text[: text.index(AGENT_CUE) + len(AGENT_CUE)]
        assert split_of(prompt) == "train"


@settings(max_examples=25, deadline=None)
@given(split=st.sampled_from(["train", "eval"]), seed=st.integers(0, 10**6))
def test_support_prompt_facts_read_back_from_text(split, seed):
    for prompt in TASK.prompts(split, 5, seed=seed):
        assert isinstance(prompt, Prompt)
        assert prompt.text.endswith("\nAgent:")
        assert split_of(prompt.text) == split
        assert 3 <= len(prompt.facts) <= 4
        assert TASK.facts_of(prompt.text) == prompt.facts


def test_support_facts_of_rejects_text_without_record():
    with pytest.raises(InputError, match="no line starting with 'Record:'"):
        TASK.facts_of("Customer: hello\nAgent:")


def test_support_prompts_reject_unknown_split():
    with pytest.raises(InputError, match="split is 'test'; use one of train, eval"):
        TASK.prompts("test", 3)


@pytest.mark.parametrize("n_facts", [0, 1, 2, 3])
@pytest.mark.parametrize("length", ["short", "long"])
def test_support_reply_states_exactly_the_asked_facts(n_facts, length):
    informativeness = resolve("informativeness")
    prompt = TASK.prompts("train", 1, seed=7)[0]
    style = ReplyStyle(length=length, n_facts=n_facts, warmth="neutral")
    reply = compose_reply(TASK.record_of(prompt.text), style, random.Random(0))
    share = informativeness([prompt.text], [reply])[0]
    assert share == pytest.approx(n_facts / len(prompt.facts))


def test_support_reply_styles_move_their_rewards():
    prompt = TASK.prompts("train", 1, seed=11)[0]
    record = TASK.record_of(prompt.text)
    rewards = {name: resolve(name) for name in TASK.default_objectives}

    def mean(name: str, **style) -> float:
        replies = [
            compose_reply(record, ReplyStyle(**style), random.Random(i))
            for i in range(20)
        ]
        return float(rewards[name]([prompt.text] * 20, replies).mean())

    n = len(prompt.facts)
    assert mean("brevity", length="short", n_facts=1, warmth="neutral") > mean(
        "brevity", length="long", n_facts=1, warmth="neutral"
    )
    assert mean("warmth", length="long", n_facts=1, warmth="warm") > mean(
        "warmth", length="long", n_facts=1, warmth="neutral"
    )
    assert mean("warmth", length="long", n_facts=1, warmth="neutral") > mean(
        "warmth", length="long", n_facts=1, warmth="cold"
    )
    assert mean("informativeness", length="short", n_facts=n, warmth="cold") == 1.0


def test_support_corpus_parts_split_off_the_record_line():
    parts = TASK.corpus_parts(50, seed=2)
    assert [g + x for g, x in parts] == TASK.corpus(50, seed=2)
    for context, learned in parts:
        assert context.startswith("Record: ") and context.endswith("\n")
        assert learned.startswith("Customer: ") and "\nAgent: " in learned
