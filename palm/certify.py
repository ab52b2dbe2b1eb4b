"""The certificate: a portfolio's exact worst-case gaps over the whole simplex.

Against the trained policies `T` and a portfolio `P ⊆ T`:

- additive gap `max_w [V(w) − max_{p∈P} w·r_p]`: for each `q ∈ T` the LP
  `max t  s.t.  t ≤ w·(r_q − r_p) ∀p∈P, w on the simplex`; the largest over `q`.
- multiplicative gap `max_w [1 − max_{p∈P} w·r_p / V(w)]`: for each `q` the
  Charnes–Cooper LP `min s  s.t.  y·r_q = 1, y·r_p ≤ s ∀p∈P, y ≥ 0`; the gap is
  `1 − min_q s_q` and the weight vector is `y` normalised.

Where `V(w) = 0` every policy, member or not, scores 0 and the gap there is 0.

Most `q` cannot matter, so the LPs are solved only for the rest:
1. a `q` whose reward vector is weakly dominated by another policy's is never worse
   than that policy's LP (that includes members and anything a member dominates);
2. a cheap upper bound on each `q`'s LP is compared with the gap actually measured on
   a fixed sample of weight vectors; a `q` that cannot beat it is skipped.
The LPs left are independent, so they are solved as one block-diagonal LP: maximising
the sum of the blocks' objectives maximises each block's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from palm.errors import InputError, RewardError

logger = logging.getLogger(__name__)

# Weight vectors on which the gap is measured directly, to give a lower bound.
_PROBE_SAMPLES = 256
# Below this a gap is LP round-off, reported as 0.
_ZERO = 1e-9


@dataclass(frozen=True)
class Gap:
    """A worst-case gap over the simplex and a weight vector at which it is attained.

    The one type for a gap: the certificate computes it and the portfolio file (and
    the router) carry it, so the weight is kept as a plain tuple of floats.
    """

    gap: float
    weight: tuple[float, ...]  # (d,) on the simplex

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", tuple(float(x) for x in self.weight))

    def to_json(self) -> dict[str, Any]:
        return {"gap": self.gap, "weight": list(self.weight)}


@dataclass(frozen=True)
class Certificate:
    """The portfolio's exact worst-case gaps against the trained policies."""

    multiplicative: Gap
    additive: Gap

    def to_json(self) -> dict[str, Any]:
        return {
            "multiplicative": self.multiplicative.to_json(),
            "additive": self.additive.to_json(),
        }


def certify(rewards: Any, members: Any) -> Certificate:
    """Certify the portfolio `members` (row indices) against all rows of `rewards`."""
    started = time.perf_counter()
    rewards, members = _check(rewards, members)
    portfolio = rewards[members]
    candidates = _undominated(rewards)
    probes = _probe_weights(rewards.shape[1])
    low_mult = _measured(rewards, portfolio, probes, "multiplicative")
    low_add = _measured(rewards, portfolio, probes, "additive")
    mult = _solve(rewards, portfolio, candidates, low_mult, "multiplicative")
    add = _solve(rewards, portfolio, candidates, low_add, "additive")
    logger.info(
        "prune/certificate members=%d policies=%d multiplicative=%.4g "
        "additive=%.4g seconds=%.3f",
        len(members),
        len(rewards),
        mult.gap,
        add.gap,
        time.perf_counter() - started,
    )
    return Certificate(multiplicative=mult, additive=add)


def gap_at(rewards: np.ndarray, portfolio: np.ndarray, w: np.ndarray, kind: str):
    """The gap of `portfolio` at weight vector(s) `w` (k, d) against `rewards`."""
    w = np.atleast_2d(w)
    best = (w @ rewards.T).max(axis=1)
    chosen = (w @ portfolio.T).max(axis=1)
    if kind == "additive":
        return np.maximum(best - chosen, 0.0)
    ratio = np.divide(chosen, best, out=np.ones_like(best), where=best > 0)
    return np.maximum(1.0 - ratio, 0.0)


# --------------------------------------------------------------------------- input


def _check(rewards: Any, members: Any) -> tuple[np.ndarray, np.ndarray]:
    rewards = np.asarray(rewards, dtype=float)
    if rewards.ndim != 2 or rewards.shape[0] == 0 or rewards.shape[1] == 0:
        raise InputError(
            f"rewards has shape {rewards.shape}; it must be (policies, objectives)"
        )
    if not np.all(np.isfinite(rewards)) or rewards.min() < 0 or rewards.max() > 1:
        raise RewardError("rewards must be finite and in [0, 1]")
    members = np.asarray(members)
    if members.ndim != 1 or members.size == 0:
        raise InputError("the portfolio is empty; give at least one member")
    if not np.issubdtype(members.dtype, np.integer):
        raise InputError(f"members are {members.dtype} values; give row indices")
    bad = members[(members < 0) | (members >= len(rewards))]
    if bad.size:
        raise InputError(
            f"member index {int(bad[0])} is outside the {len(rewards)} policies"
        )
    return rewards, np.unique(members)


# --------------------------------------------------------------------------- pruning


def _undominated(rewards: np.ndarray) -> np.ndarray:
    """Indices of policies no other policy weakly dominates (one of each tie)."""
    n = len(rewards)
    keep = np.ones(n, dtype=bool)
    order = np.arange(n)
    for start in range(0, n, 256):  # chunks keep the (chunk, n, d) block small
        q = rewards[start : start + 256, None, :]
        geq = np.all(rewards[None, :, :] >= q, axis=2)
        gt = np.any(rewards[None, :, :] > q, axis=2)
        earlier = order[None, :] < order[start : start + 256, None]
        # Dominated strictly, or equal to a policy listed before it.
        keep[start : start + 256] = ~np.any(geq & (gt | earlier), axis=1)
    return np.flatnonzero(keep)


def _probe_weights(d: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    sample = rng.dirichlet(np.ones(d), size=_PROBE_SAMPLES)
    return np.concatenate([np.eye(d), np.full((1, d), 1.0 / d), sample])


def _measured(rewards, portfolio, probes, kind: str) -> Gap:
    gaps = gap_at(rewards, portfolio, probes, kind)
    i = int(np.argmax(gaps))
    return Gap(float(gaps[i]), probes[i])


def _upper_bounds(rewards_q: np.ndarray, portfolio: np.ndarray, kind: str):
    """A cheap bound on each q's LP optimum, from the simplex's vertices.

    Additive: w·(r_q − r_p) ≤ max_i (r_q − r_p)_i. Multiplicative: w·r_p / w·r_q is
    at least min over i with r_qi > 0 of r_pi / r_qi (a weighted mediant).
    """
    diff = rewards_q[:, None, :] - portfolio[None, :, :]  # (q, p, d)
    if kind == "additive":
        return diff.max(axis=2).min(axis=1)
    rq = rewards_q[:, None, :]
    shortfall = np.divide(diff, rq, out=np.full_like(diff, -np.inf), where=rq > 0)
    return shortfall.max(axis=2).min(axis=1)


def _solve(rewards, portfolio, candidates, measured: Gap, kind: str) -> Gap:
    rq = rewards[candidates]
    rq = rq[_upper_bounds(rq, portfolio, kind) > measured.gap + _ZERO]
    if len(rq) == 0:
        return _clamped(measured)
    if kind == "additive":
        value, weight = _additive_lps(rq, portfolio)
    else:
        value, weight = _multiplicative_lps(rq, portfolio)
    attained = float(gap_at(rewards, portfolio, weight, kind)[0])
    # The LP optimum and the gap at its weight agree up to solver tolerance; the
    # larger keeps the certificate an upper bound.
    found = Gap(max(value, attained), weight)
    return _clamped(found if found.gap > measured.gap else measured)


def _clamped(g: Gap) -> Gap:
    return Gap(0.0 if g.gap < _ZERO else float(g.gap), g.weight)


# --------------------------------------------------------------------------- LPs


def _block_rows(per_block: np.ndarray) -> sparse.csr_matrix:
    """Sparse block-diagonal matrix: block b has rows per_block[b] (k, d+1)."""
    n_q, k, width = per_block.shape
    rows = np.repeat(np.arange(n_q * k), width)
    cols = (np.arange(n_q)[:, None, None] * width + np.arange(width)).repeat(k, 1)
    return sparse.csr_matrix(
        (per_block.ravel(), (rows, cols.ravel())), shape=(n_q * k, n_q * width)
    )


def _additive_lps(rq: np.ndarray, portfolio: np.ndarray) -> tuple[float, np.ndarray]:
    """Variables per q: (w, t). max t s.t. t − w·(r_q − r_p) ≤ 0, Σw = 1."""
    n_q, d = rq.shape
    k = len(portfolio)
    blocks = np.empty((n_q, k, d + 1))
    blocks[:, :, :d] = portfolio[None, :, :] - rq[:, None, :]
    blocks[:, :, d] = 1.0
    eq = np.concatenate([np.ones((n_q, 1, d)), np.zeros((n_q, 1, 1))], axis=2)
    c = np.tile(np.r_[np.zeros(d), -1.0], n_q)
    x = _linprog(c, blocks, eq, np.ones(n_q), _bounds(n_q, d))
    t = x[d :: d + 1]
    b = int(np.argmax(t))
    w = np.maximum(x[b * (d + 1) : b * (d + 1) + d], 0.0)
    return float(t[b]), w / w.sum()


def _multiplicative_lps(rq: np.ndarray, portfolio: np.ndarray):
    """Variables per q: (y, s). min s s.t. y·r_p − s ≤ 0, y·r_q = 1, y ≥ 0."""
    n_q, d = rq.shape
    k = len(portfolio)
    blocks = np.empty((n_q, k, d + 1))
    blocks[:, :, :d] = portfolio[None, :, :]
    blocks[:, :, d] = -1.0
    eq = np.concatenate([rq[:, None, :], np.zeros((n_q, 1, 1))], axis=2)
    c = np.tile(np.r_[np.zeros(d), 1.0], n_q)
    x = _linprog(c, blocks, eq, np.ones(n_q), _bounds(n_q, d))
    s = x[d :: d + 1]
    b = int(np.argmin(s))
    y = np.maximum(x[b * (d + 1) : b * (d + 1) + d], 0.0)
    return 1.0 - float(s[b]), y / y.sum()


def _bounds(n_q: int, d: int) -> np.ndarray:
    """Per block: d non-negative weights, then the free objective variable."""
    one = np.array([[0.0, np.inf]] * d + [[-np.inf, np.inf]])
    return np.tile(one, (n_q, 1))


def _linprog(c, blocks, eq, b_eq, bounds) -> np.ndarray:
    a_ub = _block_rows(blocks)
    a_eq = _block_rows(eq)
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.zeros(a_ub.shape[0]),
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    if res.status != 0:
        # Every block is feasible and bounded by construction; reaching here is a bug.
        raise RuntimeError(f"certificate LP failed: {res.message}")
    return res.x
