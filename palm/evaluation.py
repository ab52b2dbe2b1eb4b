"""Evaluate one policy: sample on held-out prompts, score every objective.

The reward vector is the mean reward per objective over every sample; its standard
error is taken over prompts (the samples of one prompt are not independent), so it
stays honest when `samples_per_prompt` is large.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from palm import builds
from palm.store import Store

log = logging.getLogger(__name__)


def evaluate_policy(store: Store, build: str, policy: str) -> dict[str, Any]:
    """Measure `policy` (or the base model, `policy == "base"`) unless done already."""
    target = builds.rewards_path(build, policy)
    if store.exists(target):
        log.info("evaluate %s/%s: reward vector already in the store", build, policy)
        return store.read_json(target)
    spec = builds.load_spec(store, build)
    started = time.monotonic()
    log.info("evaluate %s/%s: started", build, policy)
    prompts, responses, n_prompts = sample(store, build, spec, policy)
    matrix = score_all(spec, prompts, responses)  # (samples, objectives)
    result = summarise(spec, policy, matrix, n_prompts)
    if policy != builds.BASE:
        result["weight"] = builds.policy_weight(store, build, policy)
    result["seconds"] = round(time.monotonic() - started, 3)
    store.write_json(target, result, exclusive=True)
    log.info(
        "evaluate %s/%s: finished in %.1fs, %d samples, rewards=%s",
        build,
        policy,
        result["seconds"],
        result["samples"],
        ", ".join(
            f"{n}={v:.3f}"
            for n, v in zip(result["objectives"], result["rewards"], strict=True)
        ),
    )
    return store.read_json(target)


def sample(store: Store, build: str, spec, policy: str):
    """Generate `samples_per_prompt` seeded replies to each held-out prompt."""
    from palm import models
    from palm.tasks import get_task

    e = spec.evaluation
    model, tokenizer = models.load(builds.base_model_dir(store, build))
    if policy != builds.BASE:
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model, store.local_dir(builds.adapter_path(build, policy))
        )
    model.eval()
    # The same prompts and seed for every policy: differences are the policy's.
    texts = [
        p.text for p in get_task(spec.task).prompts("eval", e.prompts, seed=spec.seed)
    ]
    prompts = [t for t in texts for _ in range(e.samples_per_prompt)]
    responses = models.generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=e.max_new_tokens,
        temperature=e.temperature,
        top_p=e.top_p,
        seed=spec.seed,
    )
    return prompts, responses, len(texts)


def score_all(spec, prompts: list[str], responses: list[str]) -> np.ndarray:
    from palm import rewards

    columns = [
        rewards.score(rewards.resolve(o.reward), prompts, responses)
        for o in spec.objectives
    ]
    return np.stack(columns, axis=1)


def summarise(spec, policy: str, matrix: np.ndarray, n_prompts: int) -> dict[str, Any]:
    per_prompt = matrix.reshape(n_prompts, -1, matrix.shape[1]).mean(axis=1)
    stderr = (
        per_prompt.std(axis=0, ddof=1) / np.sqrt(n_prompts)
        if n_prompts > 1
        else (np.zeros(matrix.shape[1]))
    )
    return {
        "policy": policy,
        "objectives": list(spec.objective_names),
        "rewards": [float(x) for x in matrix.mean(axis=0)],
        "stderr": [float(x) for x in stderr],
        "samples": int(matrix.shape[0]),
        "prompts": int(n_prompts),
    }
