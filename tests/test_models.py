from __future__ import annotations

import json

import numpy as np
import pytest

from palm import models
from palm import pretrain as pretrain_module
from palm.cli import main
from palm.errors import InputError, SpecError
from palm.pretrain import SETTINGS_FILE, PretrainSettings, pretrain
from palm.rewards import resolve
from palm.tasks import get_task

# Shrunk to train in a few seconds: 200 texts, a 2-layer model of width 32 and
# 6 steps. It does not learn the task; it only exercises the plumbing.
TINY = PretrainSettings(
    corpus_size=200,
    vocab_size=400,
    hidden_size=32,
    layers=2,
    heads=2,
    intermediate_size=64,
    max_length=128,
    steps=6,
    batch_size=8,
    warmup_steps=2,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return pretrain("support", tmp_path_factory.mktemp("models"), TINY, threads=1)


def test_pretrain_writes_a_loadable_model(tiny_model):
    record = json.loads((tiny_model / SETTINGS_FILE).read_text())
    assert record["hash"] == TINY.digest("support")
    assert record["settings"]["steps"] == 6
    assert tiny_model.name == f"support-{TINY.digest('support')[:12]}"


def test_pretrain_second_call_returns_the_cache(tiny_model, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    before = (tiny_model / SETTINGS_FILE).stat().st_mtime_ns
    monkeypatch.setattr(pretrain_module, "_build", no_training)
    assert pretrain("support", tiny_model.parent, TINY) == tiny_model
    assert (tiny_model / SETTINGS_FILE).stat().st_mtime_ns == before


def test_pretrain_other_settings_get_another_folder(tiny_model):
    other = PretrainSettings(**{**TINY.__dict__, "seed": 1})
    assert other.digest("support") != TINY.digest("support")
    assert pretrain_module.model_dir("support", tiny_model.parent, other) != tiny_model


def test_pretrain_settings_report_every_problem():
    with pytest.raises(SpecError) as caught:
        PretrainSettings(steps=0, heads=3, learning_rate=-1.0)
    assert len(caught.value.problems) == 3


def test_load_pads_on_the_left(tiny_model):
    model, tokenizer = models.load(tiny_model)
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.eos_token == "<|endoftext|>"
    assert not model.training
    batch = tokenizer(["a", "a much longer prompt"], padding=True)
    assert batch["attention_mask"][0][0] == 0


def test_load_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError, match="holds no config.json"):
        models.load(tmp_path / "nothing")


def test_generate_returns_new_text_per_sample(tiny_model):
    model, tokenizer = models.load(tiny_model)
    prompts = [p.text for p in get_task("support").prompts("eval", 3)]
    kwargs = dict(max_new_tokens=8, temperature=1.0, seed=3, num_return_sequences=2)
    first = models.generate(model, tokenizer, prompts, **kwargs)
    assert len(first) == 6
    assert all(isinstance(t, str) for t in first)
    assert models.generate(model, tokenizer, prompts, **kwargs) == first
    greedy = models.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=0)
    assert greedy == models.generate(
        model, tokenizer, prompts, max_new_tokens=8, temperature=0, batch_size=1
    )


def test_generate_rejects_bad_sampling(tiny_model):
    model, tokenizer = models.load(tiny_model)
    with pytest.raises(InputError, match="top_p 0"):
        models.generate(
            model, tokenizer, ["x"], max_new_tokens=2, temperature=1, top_p=0
        )


def test_cli_model_pretrain_reports_cache(tiny_model, capsys):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.__dict__.items()]
    argv = ["model", "pretrain", "--out", str(tiny_model.parent), "--json", *flags]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["cached"] is True
    assert result["path"] == str(tiny_model)


def test_cli_model_pretrain_bad_setting_exits_2(tmp_path, capsys):
    assert main(["model", "pretrain", "--out", str(tmp_path), "--heads", "3"]) == 2
    assert "heads: 3 does not divide hidden_size 128" in capsys.readouterr().err


@pytest.mark.slow
def test_support_model_replies_spread_over_objectives(support_model):
    model, tokenizer = models.load(support_model)
    prompts = [p.text for p in get_task("support").prompts("eval", 32)]
    replies = models.generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=96,
        temperature=1.0,
        seed=0,
        num_return_sequences=2,
    )
    prompts = [p for p in prompts for _ in range(2)]
    rewards = {
        name: resolve(name)(prompts, replies)
        for name in ("brevity", "informativeness", "warmth")
    }
    for name, values in rewards.items():
        assert values.std() > 0.1, (name, values)
        assert values.max() - values.min() > 0.5, (name, values)
    correlation = np.corrcoef(rewards["brevity"], rewards["informativeness"])[0, 1]
    assert correlation < -0.2
