"""Baselines and metrics: how a portfolio does on held-out weight vectors.

Baselines at equal size `k`:
- `uniform`: k evenly spread weight vectors, trained. A build trains exactly those
  weight vectors when it can; from an existing set of trained policies,
  `uniform_portfolio` takes the ones whose training weight vectors are nearest to them.
- `random`: k members of the trained set drawn at random.

Metrics: the worst and mean multiplicative and additive gaps over held-out weight
vectors, against all trained policies, and the perplexity of member usage.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from palm.errors import InputError


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InputError(f"k is {k!r}; it must be an integer ≥ 1 (portfolio size)")
    return int(k)


def _lattice(d: int, h: int) -> np.ndarray:
    """Every weight vector whose entries are multiples of 1/h, vertices first."""
    if d == 1:
        return np.ones((1, 1))
    rows = []
    for first in range(h, -1, -1):
        rest = _lattice(d - 1, h - first) * (h - first) if h > first else None
        if rest is None:
            rows.append(np.r_[h, np.zeros(d - 1)][None, :])
        else:
            rows.append(np.column_stack([np.full(len(rest), first), rest]))
    return np.concatenate(rows) / h


def uniform_weights(d: int, k: int) -> np.ndarray:
    """k weight vectors spread evenly over the simplex, the same every call.

    Taken from the coarsest simplex lattice with at least k points: all of it when it
    has exactly k (for d = 2, k equally spaced vectors), otherwise k of its points
    chosen by farthest-point sampling from the vertices inwards. k = 1 is the centre.
    """
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise InputError(f"objectives is {d!r}; it must be an integer ≥ 1")
    k = _check_k(k)
    if k == 1 or d == 1:
        return np.full((1, d), 1.0 / d)
    h = 1
    while math.comb(h + d - 1, d - 1) < k:
        h += 1
    points = _lattice(d, h)
    return points[sorted(_farthest_first(points, k))]


def _farthest_first(points: np.ndarray, k: int) -> list[int]:
    chosen = [0]
    dist = np.linalg.norm(points - points[0], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(dist))  # argmax takes the first of ties: deterministic
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return chosen


def uniform_portfolio(policy_weights: Any, k: int) -> list[int]:
    """The trained policies whose training weights are nearest to k uniform vectors.

    Each uniform vector takes the nearest policy not yet taken, so the result has
    min(k, n) distinct members.
    """
    policy_weights = np.asarray(policy_weights, dtype=float)
    if policy_weights.ndim != 2 or len(policy_weights) == 0:
        raise InputError(
            f"policy weights have shape {policy_weights.shape}; give (policies, "
            "objectives) with at least one policy"
        )
    k = min(_check_k(k), len(policy_weights))
    targets = uniform_weights(policy_weights.shape[1], k)
    dist = np.linalg.norm(targets[:, None, :] - policy_weights[None, :, :], axis=2)
    taken: list[int] = []
    for row in dist:
        row = row.copy()
        row[taken] = np.inf
        taken.append(int(np.argmin(row)))
    return sorted(taken)


def random_portfolio(n: int, k: int, seed: int = 0) -> list[int]:
    """k distinct policy indices out of n, drawn with the given seed."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InputError(f"n is {n!r}; it must be an integer ≥ 1 (trained policies)")
    k = min(_check_k(k), int(n))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(int(n), size=k, replace=False))


def _values(rewards: Any, members: Any, weights: Any):
    rewards = np.asarray(rewards, dtype=float)
    weights = np.asarray(weights, dtype=float)
    members = list(members)
    if not members:
        raise InputError("the portfolio is empty; give at least one member")
    if weights.ndim != 2 or weights.shape[1] != rewards.shape[1]:
        raise InputError(
            f"weights have shape {weights.shape}; each weight vector needs "
            f"{rewards.shape[1]} entries, one per objective"
        )
    values = weights @ rewards.T  # (m, n)
    return values, values[:, members]


def gaps(rewards: Any, members: Any, weights: Any) -> dict[str, float]:
    """Worst and mean gaps of the portfolio over the weight vectors, against all."""
    values, chosen = _values(rewards, members, weights)
    best = values.max(axis=1)
    got = chosen.max(axis=1)
    additive = np.maximum(best - got, 0.0)
    ratio = np.divide(got, best, out=np.ones_like(best), where=best > 0)
    multiplicative = np.maximum(1.0 - ratio, 0.0)
    return {
        "worst_multiplicative": float(multiplicative.max()),
        "mean_multiplicative": float(multiplicative.mean()),
        "worst_additive": float(additive.max()),
        "mean_additive": float(additive.mean()),
    }


def usage_perplexity(rewards: Any, members: Any, weights: Any) -> float:
    """exp(entropy) of how often each member is the best for a weight vector.

    1 when one member serves everyone; k when k members share the users evenly.
    """
    _, chosen = _values(rewards, members, weights)
    counts = np.bincount(chosen.argmax(axis=1), minlength=chosen.shape[1])
    share = counts[counts > 0] / counts.sum()
    return float(np.exp(-(share * np.log(share)).sum()))
