"""Whole builds through the CLI, a real broker and real workers; resume; embedded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis

from palm import builds
from palm.certify import certify
from palm.cover import coverage, default_weights
from palm.pruning import reward_matrix
from palm.runner import run_build
from palm.spec import load_spec
from palm.store import Store

from .conftest import PALM, ROOT

MICRO = ROOT / "tests" / "data" / "micro.toml"

pytestmark = pytest.mark.slow


def palm_cli(*args: str) -> dict:
    out = subprocess.run(
        [*PALM, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_build_submitted_finishes_after_its_lost_prune_is_resumed(
    workers, redis_url, support_model, wait_for, tmp_path
):
    broker = ["--broker", redis_url, "--store", workers.store]
    client = redis.Redis.from_url(redis_url)
    workers.start("train")
    workers.start("evaluate")
    build = palm_cli("build", "submit", str(MICRO), *broker, "--json")["build"]

    # With no prune worker, the chord's callback waits on the prune queue...
    wait_for(lambda: client.llen("prune") == 1, 600, "the prune task to be queued")
    assert palm_cli("build", "status", build, *broker, "--json")["state"] == "running"
    # ...where we lose it, as if Redis had dropped it.
    client.delete("prune")
    status = palm_cli("build", "status", build, *broker, "--json")
    assert status["state"] == "stalled"
    assert status["stages"]["train"]["done"] == 5
    assert status["stages"]["evaluate"]["done"] == 5

    resumed = palm_cli("build", "resume", build, *broker, "--json")
    assert resumed["enqueued"] == {"train": 0, "evaluate": 0, "prune": 1}
    workers.start("prune")
    wait_for(
        lambda: (
            palm_cli("build", "status", build, *broker, "--json")["state"] == "done"
        ),
        300,
        "the build to finish",
        interval=0.5,
    )
    _check_portfolio(Store(workers.store), build)
    # A finished build has nothing left to enqueue.
    again = palm_cli("build", "resume", build, *broker, "--json")
    assert again["enqueued"] == {"train": 0, "evaluate": 0, "prune": 0}

    # The same spec run embedded, in one process and another store, agrees.
    local = Store(str(tmp_path / "embedded"))
    embedded = run_build(load_spec(MICRO), local, progress=False)
    served = Store(workers.store).read_json(builds.portfolio_path(build))
    assert [m["id"] for m in embedded["members"]] == [
        m["id"] for m in served["members"]
    ]
    np.testing.assert_allclose(
        reward_matrix(local, embedded["build"]).rewards,
        reward_matrix(Store(workers.store), build).rewards,
        atol=1e-6,
    )


def _check_portfolio(store: Store, build: str) -> None:
    spec = load_spec(MICRO)
    portfolio = store.read_json(builds.portfolio_path(build))
    matrix = reward_matrix(store, build)
    assert portfolio["version"] == 1
    assert portfolio["trained"] == len(matrix.ids) == 5
    assert store.exists(builds.rewards_path(build, builds.BASE))
    members = [matrix.ids.index(m["id"]) for m in portfolio["members"]]
    for m in portfolio["members"]:
        assert store.has_dir(Path(m["adapter"]).relative_to(store.root).as_posix())

    # Members cover every weight vector the pruner was given, with the spec's ε, δ.
    weights = default_weights(
        2, spec.grid.alpha, spec.grid.mu, samples=spec.cover.samples, seed=spec.seed
    )
    covered = coverage(matrix.rewards, weights, spec.cover.epsilon, spec.cover.delta)
    assert covered[:, members].any(axis=1).all()

    # The certificate is the exact one for these members, and bounds sampled gaps.
    cert = certify(matrix.rewards, members).to_json()
    assert portfolio["certificate"] == cert
    values = weights @ matrix.rewards.T
    sampled = 1 - values[:, members].max(axis=1) / values.max(axis=1)
    assert cert["multiplicative"]["gap"] >= sampled.max() - 1e-9
    assert cert["multiplicative"]["gap"] <= spec.cover.epsilon + 0.05
