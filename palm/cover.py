"""Coverage and pruning: the smallest portfolio near-optimal for every weight vector.

For weight vectors `W` (m, d) and the trained policies' reward vectors `R` (n, d),
`V(w) = max_p w·r_p` and policy `p` covers `w` when `w·r_p ≥ (1−ε)·V(w) − δ`. Pruning
is set cover over that relation:

- `greedy`: the paper's algorithm, lazily re-scored on the boolean coverage matrix.
- `exact`: a minimum cover by integer programming (HiGHS through `scipy.optimize.milp`);
  past its time limit it falls back to the better of the solver's incumbent and greedy,
  and its result says so.

`budget_cover` answers the dual question: with at most `k` members, the smallest `ε`
(or `δ`) reachable on `W`.

Internally the coverage matrix is kept policy-major, (n, m), so that one policy's row of
covered weight vectors is contiguous; `coverage` hands out its (m, n) transpose.
"""

from __future__ import annotations

import heapq
import logging
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from palm.errors import InputError, RewardError
from palm.grid import DEFAULT_ALPHA, DEFAULT_MU, geometric_grid

logger = logging.getLogger(__name__)

SOLVERS = ("greedy", "exact")
BUDGET_KINDS = ("multiplicative", "additive")
DEFAULT_SAMPLES = 5000
DEFAULT_TIME_LIMIT = 30.0

# Slack for floating-point rounding in w·r_p ≥ (1−ε)V(w) − δ; rewards are in [0, 1]
# and weights sum to 1, so values are in [0, 1] and 1e-12 is far below any real gap.
_TOL = 1e-12


# --------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class RewardMatrix:
    """Every trained policy's reward vector, read from an `R.json`."""

    objectives: tuple[str, ...]
    ids: tuple[str, ...]
    rewards: np.ndarray  # (n, d), each in [0, 1]
    weights: np.ndarray | None = None  # (n, d): the weight vector each was trained for
    stderr: np.ndarray | None = None  # (n, d): standard error of each mean reward

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def d(self) -> int:
        return len(self.objectives)

    @classmethod
    def from_json(cls, obj: Any) -> RewardMatrix:
        """Validate an R.json: `{"objectives": [...], "policies": [...]}`.

        Each policy is `{"id", "rewards", "weight"?, "stderr"?}`; a bad entry is an
        InputError naming the policy, the value and the rule.
        """
        if not isinstance(obj, dict):
            raise InputError(
                f"the reward matrix is a JSON {type(obj).__name__}; it must be an "
                'object with "objectives" and "policies"'
            )
        objectives = _read_objectives(obj.get("objectives"))
        policies = _read_policy_list(obj.get("policies"))
        rows = [_read_policy(p, i, len(objectives)) for i, p in enumerate(policies)]
        ids = tuple(r["id"] for r in rows)
        _check_unique_ids(ids)
        return cls(
            objectives=objectives,
            ids=ids,
            rewards=np.array([r["rewards"] for r in rows], dtype=float),
            weights=_optional_column(rows, "weight"),
            stderr=_optional_column(rows, "stderr"),
        )

    def to_json(self) -> dict[str, Any]:
        policies = []
        for i, pid in enumerate(self.ids):
            entry: dict[str, Any] = {"id": pid}
            if self.weights is not None:
                entry["weight"] = self.weights[i].tolist()
            entry["rewards"] = self.rewards[i].tolist()
            if self.stderr is not None:
                entry["stderr"] = self.stderr[i].tolist()
            policies.append(entry)
        return {"objectives": list(self.objectives), "policies": policies}

    def indices_of(self, ids: list[str]) -> list[int]:
        """Row indices of the given policy ids; an unknown id is an InputError."""
        where = {pid: i for i, pid in enumerate(self.ids)}
        out = []
        for pid in ids:
            if pid not in where:
                raise InputError(
                    f"policy id {pid!r} is not in the reward matrix; known ids "
                    f"start {', '.join(map(repr, self.ids[:5]))}"
                )
            out.append(where[pid])
        return out


def _read_objectives(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(
            f'"objectives" is {value!r}; it must be a non-empty list of names'
        )
    if not all(isinstance(v, str) and v for v in value):
        raise InputError(f'"objectives" is {value!r}; every name must be a string')
    if len(set(value)) != len(value):
        raise InputError(f'"objectives" is {value!r}; names must be distinct')
    return tuple(value)


def _read_policy_list(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise InputError(
            f'"policies" is {_short(value)}; it must be a non-empty list of '
            'objects with "id" and "rewards"'
        )
    return value


def _read_policy(entry: Any, i: int, d: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise InputError(
            f'policy #{i} is {_short(entry)}; it must be an object with "id" and '
            '"rewards"'
        )
    pid = entry.get("id")
    if not isinstance(pid, str) or not pid:
        raise InputError(f"policy #{i} has id {pid!r}; it must be a non-empty string")
    row: dict[str, Any] = {"id": pid}
    owner = f"policy {pid!r}"
    row["rewards"] = _read_vector(entry.get("rewards"), owner, "rewards", d)
    bad = [x for x in row["rewards"] if not 0.0 <= x <= 1.0]
    if bad:
        raise RewardError(
            f"policy {pid!r} has reward {bad[0]!r}; rewards must be in [0, 1] "
            "(normalise each objective first)"
        )
    if "weight" in entry:
        row["weight"] = _read_simplex(entry["weight"], owner, d)
    if "stderr" in entry:
        row["stderr"] = _read_vector(entry["stderr"], owner, "stderr", d)
        if min(row["stderr"]) < 0:
            raise InputError(f"policy {pid!r} has a negative stderr; it must be ≥ 0")
    return row


def _read_vector(value: Any, owner: str, what: str, d: int) -> list[float]:
    """A list of d finite numbers, or an InputError naming its owner and the rule."""
    if not isinstance(value, list):
        raise InputError(
            f"{owner} has {what} {_short(value)}; it must be a list of {d} numbers"
        )
    if len(value) != d:
        raise InputError(
            f"{owner} has {len(value)} {what} entries, the reward matrix has {d} "
            "objectives; give one per objective"
        )
    for x in value:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise InputError(
                f"{owner} has {what} entry {x!r}; every entry must be a number"
            )
        if not math.isfinite(x):
            raise RewardError(
                f"{owner} has {what} entry {x!r}; entries must be finite "
                "(no NaN or infinity)"
            )
    return [float(x) for x in value]


def _read_simplex(value: Any, owner: str, d: int) -> list[float]:
    """A weight vector: non-negative, positive sum, normalised onto the simplex."""
    vec = _read_vector(value, owner, "weight", d)
    if min(vec) < 0 or sum(vec) <= 0:
        raise InputError(
            f"{owner} has weight {vec}; a weight vector must be non-negative "
            "with a positive sum"
        )
    total = sum(vec)
    return [x / total for x in vec]


def _check_unique_ids(ids: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for pid in ids:
        if pid in seen:
            raise InputError(f"policy id {pid!r} appears twice; ids must be unique")
        seen.add(pid)


def _optional_column(rows: list[dict[str, Any]], key: str) -> np.ndarray | None:
    """All policies give `key`, or none do; a mix is a mistake worth naming."""
    have = [key in r for r in rows]
    if not any(have):
        return None
    if not all(have):
        missing = rows[have.index(False)]["id"]
        raise InputError(
            f'policy {missing!r} has no "{key}" while others do; give it for every '
            "policy or for none"
        )
    return np.array([r[key] for r in rows], dtype=float)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- weights


def default_weights(
    d: int,
    alpha: float = DEFAULT_ALPHA,
    mu: float = DEFAULT_MU,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """The geometric grid plus a uniform (Dirichlet(1)) sample of the simplex."""
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral):
        raise InputError(f"samples is {samples!r}; it must be an integer ≥ 0")
    if samples < 0:
        raise InputError(f"samples is {samples}; it must be ≥ 0")
    grid = geometric_grid(d, alpha, mu)
    rng = np.random.default_rng(seed)
    dense = rng.dirichlet(np.ones(d), size=int(samples))
    return np.concatenate([grid, dense], axis=0)


def load_weights(obj: Any, d: int | None = None) -> np.ndarray:
    """Validate a W.json: a list of weight vectors, or `{"weights": [...]}`.

    Each vector must be non-negative with a positive sum; it is normalised onto the
    simplex. With `d`, each must have d entries.
    """
    if isinstance(obj, dict):
        obj = obj.get("weights")
    if not isinstance(obj, list) or not obj:
        raise InputError(
            f"the weights are {_short(obj)}; give a non-empty list of weight vectors "
            'or {"weights": [...]}'
        )
    if d is None:
        if not isinstance(obj[0], list):
            raise InputError(
                f"weight vector #0 is {_short(obj[0])}; each must be a list of numbers"
            )
        d = len(obj[0])
    rows = [_read_simplex(v, f"weight vector #{i}", d) for i, v in enumerate(obj)]
    return np.array(rows, dtype=float).reshape(len(rows), d)


# --------------------------------------------------------------------------- coverage


def _check_problem(rewards: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    rewards = np.asarray(rewards, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if rewards.ndim != 2 or rewards.shape[0] == 0:
        raise InputError(
            f"rewards has shape {rewards.shape}; it must be (policies, objectives) "
            "with at least one policy"
        )
    if weights.ndim != 2 or weights.shape[0] == 0:
        raise InputError(
            f"weights has shape {weights.shape}; it must be (vectors, objectives) "
            "with at least one vector"
        )
    if weights.shape[1] != rewards.shape[1]:
        raise InputError(
            f"weight vectors have {weights.shape[1]} entries, the rewards have "
            f"{rewards.shape[1]} objectives; they must match"
        )
    if not np.all(np.isfinite(rewards)) or rewards.min() < 0 or rewards.max() > 1:
        raise RewardError("rewards must be finite and in [0, 1]")
    if not np.all(np.isfinite(weights)) or weights.min() < 0:
        raise InputError("weight vectors must be finite and non-negative")
    return rewards, weights


def _check_tolerances(epsilon: Any, delta: Any) -> tuple[float, float]:
    if not _real(epsilon) or not 0.0 <= epsilon < 1.0:
        raise InputError(
            f"epsilon is {epsilon!r}; it must be in [0, 1), e.g. 0.05 for 5 %"
        )
    if not _real(delta) or not 0.0 <= delta < math.inf:
        raise InputError(f"delta is {delta!r}; it must be a finite number ≥ 0")
    return float(epsilon), float(delta)


def _real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _values(rewards: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scalarised values (n, m) and the best value V(w) per weight vector (m,)."""
    values = rewards @ weights.T  # the one matrix product; the floor of every cost
    return values, values.max(axis=0)


def _coverage_t(values: np.ndarray, best: np.ndarray, eps: float, dlt: float):
    threshold = (1.0 - eps) * best - dlt - _TOL
    return values >= threshold  # (n, m), policy-major


def coverage(rewards: Any, weights: Any, epsilon: float, delta: float) -> np.ndarray:
    """Boolean (m, n): policy p covers weight vector w."""
    rewards, weights = _check_problem(rewards, weights)
    epsilon, delta = _check_tolerances(epsilon, delta)
    values, best = _values(rewards, weights)
    return _coverage_t(values, best, epsilon, delta).T


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class CoverResult:
    """A portfolio and what it reaches on the weight set it was chosen for."""

    members: list[int]  # row indices into the reward matrix, ascending
    solver: str  # what actually produced it, e.g. "greedy (exact timed out after 30s)"
    epsilon: float  # multiplicative tolerance met (the one reached, in budget mode)
    delta: float  # additive tolerance met (the one reached, in budget mode)
    covered: float  # share of the weight vectors covered at (epsilon, delta)
    n_weights: int  # how many weight vectors were covered
    worst_multiplicative: float  # max over W of 1 − best member value / V(w)
    worst_additive: float  # max over W of V(w) − best member value
    seconds: float = 0.0
    budget: int | None = None  # k, in budget mode
    kind: str | None = None  # "multiplicative" or "additive", in budget mode

    def to_json(self) -> dict[str, Any]:
        out = {
            "members": list(self.members),
            "solver": self.solver,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "covered": self.covered,
            "weights": self.n_weights,
            "worst_multiplicative_gap": self.worst_multiplicative,
            "worst_additive_gap": self.worst_additive,
            "seconds": self.seconds,
        }
        if self.budget is not None:
            out["budget"] = self.budget
            out["kind"] = self.kind
        return out


def _worst_gaps(values, best, members) -> tuple[float, float]:
    chosen = values[members].max(axis=0)
    additive = float(np.max(best - chosen))
    ratio = np.divide(chosen, best, out=np.ones_like(best), where=best > 0)
    return max(0.0, float(np.max(1.0 - ratio))), max(0.0, additive)


def _result(values, best, members, solver, eps, dlt, started, **extra) -> CoverResult:
    members = sorted(int(j) for j in members)
    cov = _coverage_t(values[members], best, eps, dlt).any(axis=0)
    mult, add = _worst_gaps(values, best, members)
    return CoverResult(
        members=members,
        solver=solver,
        epsilon=eps,
        delta=dlt,
        covered=float(cov.mean()),
        n_weights=int(values.shape[1]),
        worst_multiplicative=mult,
        worst_additive=add,
        seconds=time.perf_counter() - started,
        **extra,
    )


# --------------------------------------------------------------------------- solvers


def _greedy_rows(cov_t: np.ndarray) -> list[int]:
    """Greedy set cover on a policy-major boolean matrix; returns policy rows.

    Counts of newly covered vectors only fall as members are added, so a stale count
    is an upper bound: pop the best stale count, re-score that one row, and take it if
    it still beats every other stale count (lazy greedy, same picks as plain greedy up
    to ties).
    """
    uncovered = np.ones(cov_t.shape[1], dtype=bool)
    left = cov_t.shape[1]
    counts = np.count_nonzero(cov_t, axis=1)
    heap = [(-int(c), j) for j, c in enumerate(counts) if c > 0]
    heapq.heapify(heap)
    chosen: list[int] = []
    while left > 0:
        if not heap:
            raise RuntimeError("a weight vector is covered by no policy")
        _, j = heapq.heappop(heap)
        fresh = int(np.count_nonzero(cov_t[j] & uncovered))
        if heap and fresh < -heap[0][0]:
            heapq.heappush(heap, (-fresh, j))
            continue
        chosen.append(j)
        uncovered &= ~cov_t[j]
        left -= fresh
    return chosen


def _unique_requirements(cov_t: np.ndarray) -> np.ndarray:
    """Distinct rows of the (m, n) cover relation, as a (rows, n) boolean matrix.

    Weight vectors with the same set of covering policies are one constraint; on
    dense weight sets this removes most of them before the integer program sees them.
    """
    packed = np.packbits(cov_t, axis=0).T  # (m, ceil(n/8))
    unique = np.unique(packed, axis=0)
    return np.unpackbits(unique, axis=1, count=cov_t.shape[0]).astype(bool)


def _milp_rows(cov_t: np.ndarray, limit: int, time_limit: float):
    """Minimum cover with at most `limit` members by MILP.

    Returns (members or None, proven): members is None when HiGHS proved no cover of
    that size exists (proven=True) or found none in time (proven=False).
    """
    need = _unique_requirements(cov_t)
    n = cov_t.shape[0]
    a = sparse.vstack([sparse.csr_matrix(need), sparse.csr_matrix(np.ones((1, n)))])
    lower = np.concatenate([np.ones(need.shape[0]), [0.0]])
    upper = np.concatenate([np.full(need.shape[0], np.inf), [float(limit)]])
    res = milp(
        c=np.ones(n),
        integrality=np.ones(n),
        bounds=Bounds(0.0, 1.0),
        constraints=LinearConstraint(a, lower, upper),
        options={"time_limit": max(time_limit, 0.01), "disp": False},
    )
    if res.status == 0:
        return list(np.flatnonzero(res.x > 0.5)), True
    if res.status == 2:
        return None, True
    if res.x is not None:
        return list(np.flatnonzero(res.x > 0.5)), False
    return None, False


def _exact_rows(cov_t: np.ndarray, time_limit: float) -> tuple[list[int], str]:
    greedy = _greedy_rows(cov_t)
    members, proven = _milp_rows(cov_t, len(greedy), time_limit)
    if proven and members is not None:
        return members, "exact"
    note = f"exact timed out after {time_limit:g}s"
    logger.warning("cover: %s; using the best cover found so far", note)
    if members is not None and len(members) < len(greedy):
        return members, f"exact incumbent, not proven minimal ({note})"
    return greedy, f"greedy ({note})"


def _check_solver(solver: Any, time_limit: Any) -> None:
    if solver not in SOLVERS:
        raise InputError(
            f"solver is {solver!r}; it must be one of {', '.join(SOLVERS)}"
        )
    if not _real(time_limit) or time_limit <= 0:
        raise InputError(
            f"time limit is {time_limit!r}; it must be a number of seconds above 0"
        )


def greedy_cover(rewards, weights, epsilon: float, delta: float) -> CoverResult:
    return cover(rewards, weights, epsilon, delta, solver="greedy")


def exact_cover(
    rewards, weights, epsilon: float, delta: float, time_limit: float = 30.0
) -> CoverResult:
    return cover(rewards, weights, epsilon, delta, "exact", time_limit)


def cover(
    rewards: Any,
    weights: Any,
    epsilon: float,
    delta: float,
    solver: str = "greedy",
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> CoverResult:
    """The smallest portfolio (greedy: a small one) covering every weight vector."""
    started = time.perf_counter()
    rewards, weights = _check_problem(rewards, weights)
    epsilon, delta = _check_tolerances(epsilon, delta)
    _check_solver(solver, time_limit)
    values, best = _values(rewards, weights)
    cov_t = _coverage_t(values, best, epsilon, delta)
    if solver == "greedy":
        members, used = _greedy_rows(cov_t), "greedy"
    else:
        members, used = _exact_rows(cov_t, time_limit)
    result = _result(values, best, members, used, epsilon, delta, started)
    logger.info(
        "prune/members=%d solver=%s weights=%d policies=%d seconds=%.3f",
        len(result.members),
        used,
        weights.shape[0],
        rewards.shape[0],
        result.seconds,
    )
    return result


# --------------------------------------------------------------------------- budget


def _gap_matrix(values: np.ndarray, best: np.ndarray, kind: str) -> np.ndarray:
    """Per policy and weight vector, the smallest ε (or δ) at which p covers w."""
    if kind == "additive":
        return np.maximum(best - values, 0.0)
    ratio = np.divide(values, best, out=np.ones_like(values), where=best > 0)
    return np.maximum(1.0 - ratio, 0.0)


def _reached(gaps: np.ndarray, members: list[int]) -> float:
    return float(gaps[members].min(axis=0).max())


def _budget_greedy(gaps, candidates, k) -> tuple[int, list[int]]:
    """Bisect the candidate tolerances with greedy as the (heuristic) oracle.

    The largest candidate is always feasible: every policy covers everything there.
    """
    lo, hi = 0, len(candidates) - 1
    members = _greedy_rows(gaps <= candidates[hi])
    while lo < hi:
        mid = (lo + hi) // 2
        picked = _greedy_rows(gaps <= candidates[mid])
        if len(picked) <= k:
            hi, members = mid, picked
        else:
            lo = mid + 1
    return hi, members


def _budget_exact(gaps, candidates, k, time_limit) -> tuple[list[int], str]:
    """Bisect the candidate tolerances with the MILP as the oracle: the true minimum.

    Starts from greedy's answer (feasible), asks greedy first at each step (a cheap
    yes), and the MILP only when greedy says no.
    """
    deadline = time.perf_counter() + time_limit
    _, members = _budget_greedy(gaps, candidates, k)
    hi = int(np.searchsorted(candidates, _reached(gaps, members)))
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        cov_t = gaps <= candidates[mid]
        picked = _greedy_rows(cov_t)
        proven = True
        if len(picked) > k:
            left = deadline - time.perf_counter()
            picked, proven = _milp_rows(cov_t, k, left) if left > 0 else (None, False)
        if picked is not None:
            hi, members = mid, picked
        elif proven:
            lo = mid + 1
        else:
            note = f"exact timed out after {time_limit:g}s"
            logger.warning("budget cover: %s; the tolerance is not proven", note)
            return members, f"greedy-bisection ({note})"
    return members, "exact"


def budget_cover(
    rewards: Any,
    weights: Any,
    k: int,
    solver: str = "greedy",
    kind: str = "multiplicative",
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> CoverResult:
    """With at most k members, the smallest ε (kind multiplicative) or δ (additive).

    The answer is one of the finitely many tolerances at which some policy starts to
    cover some weight vector, so bisecting over them is exact when each step is.
    """
    started = time.perf_counter()
    rewards, weights = _check_problem(rewards, weights)
    _check_solver(solver, time_limit)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InputError(f"budget is {k!r}; it must be an integer ≥ 1 (members)")
    if kind not in BUDGET_KINDS:
        raise InputError(f"kind is {kind!r}; it must be one of {BUDGET_KINDS}")
    values, best = _values(rewards, weights)
    gaps = _gap_matrix(values, best, kind)
    candidates = np.unique(gaps)
    if solver == "greedy":
        _, members = _budget_greedy(gaps, candidates, int(k))
        used = "greedy"
    else:
        members, used = _budget_exact(gaps, candidates, int(k), time_limit)
    reached = _reached(gaps, members)
    eps, dlt = (reached, 0.0) if kind == "multiplicative" else (0.0, reached)
    return _result(
        values, best, members, used, eps, dlt, started, budget=int(k), kind=kind
    )
