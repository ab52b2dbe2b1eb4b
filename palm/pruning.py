"""Prune a build: read its reward matrix, keep a small cover, certify it, publish it.

Each portfolio is written as a new version (`portfolios/v000001.json`, never
rewritten) and then copied whole over `portfolio.json`. Pruning the same reward matrix
with the same settings again returns the version already written: a prune task that
runs twice leaves one result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from palm import builds
from palm.errors import InputError, NotFound
from palm.portfolio import FORMAT, Portfolio
from palm.store import Store

log = logging.getLogger(__name__)

# Called with the written portfolio and its URL, e.g. to announce it on Redis.
Publish = Callable[[dict[str, Any], str], None]


def reward_matrix(store: Store, build: str):
    """The trained set T: every evaluated policy's reward vector, in grid order."""
    from palm.cover import RewardMatrix

    spec = builds.load_spec(store, build)
    policies = builds.load_policies(store, build)
    missing = [
        p["id"]
        for p in policies
        if not store.exists(builds.rewards_path(build, p["id"]))
    ]
    if missing:
        raise InputError(
            f"build {build}: {len(missing)} of {len(policies)} policies have no reward "
            f"vector yet ({', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}); "
            "prune after they are evaluated, or run `palm build resume`"
        )
    rows = [store.read_json(builds.rewards_path(build, p["id"])) for p in policies]
    return RewardMatrix.from_json(
        {
            "objectives": list(spec.objective_names),
            "policies": [
                {
                    "id": p["id"],
                    "weight": p["weight"],
                    "rewards": r["rewards"],
                    "stderr": r.get("stderr"),
                }
                for p, r in zip(policies, rows, strict=True)
            ],
        }
    )


def prune_build(
    store: Store, build: str, publish: Publish | None = None
) -> dict[str, Any]:
    """Write (or find) the portfolio of `build` and announce it."""
    started = time.monotonic()
    spec = builds.load_spec(store, build)
    matrix = reward_matrix(store, build)
    inputs = _fingerprint(matrix, spec)
    latest = _latest(store, build)
    if latest is not None and latest.get("inputs") == inputs:
        log.info(
            "prune %s: version %d already holds these inputs", build, latest["version"]
        )
        portfolio = latest
    else:
        portfolio = _select(store, build, spec, matrix)
        portfolio["inputs"] = inputs
        # The router's own reader checks it first: never publish one it would refuse.
        Portfolio.from_dict({**portfolio, "version": 1}, source=f"build {build}")
        portfolio = _write_version(store, build, portfolio, latest)
        log.info(
            "prune %s: version %d, %d of %d policies kept (%s), certified gaps "
            "mult=%.4f add=%.4f, %.2fs",
            build,
            portfolio["version"],
            len(portfolio["members"]),
            len(matrix.ids),
            portfolio["solver"],
            portfolio["certificate"]["multiplicative"]["gap"],
            portfolio["certificate"]["additive"]["gap"],
            time.monotonic() - started,
        )
    if publish is not None:
        publish(portfolio, store.uri(builds.portfolio_path(build)))
    return portfolio


def _select(store: Store, build: str, spec, matrix) -> dict[str, Any]:
    """Cover the weight vectors (or meet the budget), then certify the members."""
    from palm.certify import certify
    from palm.cover import budget_cover, cover, default_weights

    c = spec.cover
    weights = default_weights(
        len(matrix.objectives),
        spec.grid.alpha,
        spec.grid.mu,
        samples=c.samples,
        seed=spec.seed,
    )
    if c.budget:
        result = budget_cover(
            matrix.rewards,
            weights,
            c.budget,
            solver=c.solver,
            time_limit=c.time_limit_s,
        )
        epsilon, delta = float(result.epsilon), 0.0
    else:
        result = cover(
            matrix.rewards,
            weights,
            c.epsilon,
            c.delta,
            solver=c.solver,
            time_limit=c.time_limit_s,
        )
        epsilon, delta = c.epsilon, c.delta
    certificate = certify(matrix.rewards, list(result.members)).to_json()
    record = builds.load_record(store, build)
    return {
        "format": FORMAT,
        "build": build,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "objectives": list(matrix.objectives),
        "base_model": record["base_model"],
        "solver": result.solver,
        "epsilon": epsilon,
        "delta": delta,
        "trained": len(matrix.ids),
        "members": [_member(store, build, matrix, i) for i in result.members],
        "certificate": certificate,
    }


def _member(store: Store, build: str, matrix, i: int) -> dict[str, Any]:
    policy = matrix.ids[i]
    member = {
        "id": policy,
        "weight": [float(x) for x in matrix.weights[i]],
        "rewards": [float(x) for x in matrix.rewards[i]],
        "adapter": store.uri(builds.adapter_path(build, policy)),
    }
    if matrix.stderr is not None:
        member["stderr"] = [float(x) for x in matrix.stderr[i]]
    return member


def _fingerprint(matrix, spec) -> str:
    data = {
        "rewards": np.round(matrix.rewards, 12).tolist(),
        "ids": list(matrix.ids),
        "cover": spec.to_dict()["cover"],
        "grid": spec.to_dict()["grid"],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _latest(store: Store, build: str) -> dict[str, Any] | None:
    try:
        return store.read_json(builds.portfolio_path(build))
    except NotFound:
        return None


def _write_version(store: Store, build: str, portfolio, latest) -> dict[str, Any]:
    """Claim the next free version number (exclusive create), then point at it."""
    version = (latest or {}).get("version", 0) + 1
    while True:
        portfolio = {**portfolio, "version": version}
        if store.write_json(
            builds.portfolio_version_path(build, version), portfolio, exclusive=True
        ):
            break
        version += 1  # a concurrent pruner claimed it: never overwrite a version
    store.write_json(builds.portfolio_path(build), portfolio)
    return portfolio
