"""The embedded build: every task of a build in this process, no broker.

It calls the very functions the workers call, in the canvas's order (train then
evaluate each policy, evaluate the base model, prune), so a build run here and one
run by workers leave the same store.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

from palm import builds
from palm.evaluation import evaluate_policy
from palm.pruning import prune_build
from palm.store import Store
from palm.training import train_policy

log = logging.getLogger(__name__)


def run_build(
    spec, store: Store, build: str | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Run (or finish) a build in this process and return its portfolio."""
    started = time.monotonic()
    if build is None:
        build = builds.prepare(spec, store)
    done = builds.progress(store, build)
    policies = done["policies"]
    bar = _bar(progress)

    with bar(total=len(policies), desc="train   ", unit="policy") as stage:
        for policy in policies:
            with bar(
                total=spec.training.steps, desc=f"  {policy}", leave=False
            ) as steps:
                train_policy(store, build, policy, _advance(steps))
            stage.update()
    with bar(total=len(policies) + 1, desc="evaluate", unit="policy") as stage:
        for policy in [builds.BASE, *policies]:
            evaluate_policy(store, build, policy)
            stage.update()
    with bar(total=1, desc="prune   ", unit="build") as stage:
        portfolio = prune_build(store, build)
        stage.update()
    log.info(
        "build %s: done in %.1fs, %d policies, %d members",
        build,
        time.monotonic() - started,
        len(policies),
        len(portfolio["members"]),
    )
    return portfolio


def _bar(enabled: bool):
    def make(**kwargs):
        return tqdm(file=sys.stderr, disable=not enabled, dynamic_ncols=True, **kwargs)

    return make


def _advance(steps):
    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        steps.n = step
        reward = metrics.get("train/reward")
        if reward is not None:
            steps.set_postfix(reward=f"{reward:.3f}", refresh=False)
        steps.refresh()

    return progress
