"""GRPO really moves behaviour: a brevity policy is shorter, an informative one
states more facts, measured on held-out prompts against the base model."""

from __future__ import annotations

import tomllib

import pytest

from palm import builds
from palm.evaluation import evaluate_policy
from palm.spec import parse_spec
from palm.store import Store
from palm.training import train_policy

from .conftest import ROOT

pytestmark = pytest.mark.slow


def _spec():
    with open(ROOT / "examples" / "tiny.toml", "rb") as f:
        data = tomllib.load(f)
    data["name"] = "moves"
    data["grid"] = {"alpha": 0.9, "mu": 1.0}  # p000 = (1, 0), p003 = (0, 1)
    # Shrunk for two CPU cores, but long enough for the policies to move.
    data["training"].update(
        steps=30,
        prompts=64,
        batch_size=16,
        num_generations=8,
        learning_rate=5e-3,
        max_new_tokens=48,
        lora_rank=8,
        lora_alpha=16.0,
    )
    data["evaluation"].update(prompts=32, samples_per_prompt=2, max_new_tokens=48)
    return parse_spec(data)


def test_training_moves_brevity_and_informativeness_apart(support_model, tmp_path):
    store = Store(str(tmp_path / "store"))
    build = builds.prepare(_spec(), store)
    weights = {p["id"]: p["weight"] for p in builds.load_policies(store, build)}
    assert weights["p000"] == [1.0, 0.0] and weights["p003"] == [0.0, 1.0]
    for policy in ("p000", "p003"):
        train_policy(store, build, policy)
    base, terse, thorough = (
        evaluate_policy(store, build, p) for p in (builds.BASE, "p000", "p003")
    )
    brevity, facts = 0, 1

    def apart(a, b, i):
        """How many standard errors a's reward i lies above b's."""
        spread = (a["stderr"][i] ** 2 + b["stderr"][i] ** 2) ** 0.5
        return (a["rewards"][i] - b["rewards"][i]) / spread

    # The brevity policy is shorter than the base model and the informative one.
    assert apart(terse, base, brevity) > 3, (terse, base)
    assert apart(terse, thorough, brevity) > 3, (terse, thorough)
    # The informativeness policy states more facts than the brevity policy.
    assert apart(thorough, terse, facts) > 3, (thorough, terse)
    assert thorough["rewards"][facts] - terse["rewards"][facts] > 0.2
