"""The geometric grid of weight vectors that PALM trains one policy for.

Levels are `L = {0} ∪ {α(1+μ)^k < 1} ∪ {1}`. For each objective `i` the grid holds
every vector with `w_i = 1` and the other coordinates in `L`, normalised to sum 1.
A vector whose largest coordinate is 1 in several places would be made once per such
objective; we build each one only for the *first* objective at 1, so duplicates never
arise and the grid is exactly the vectors of `L^d` with maximum 1, normalised:
`|L|^d − (|L|−1)^d` of them, at most the bound `d·|L|^(d−1)`.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np

from palm.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.1
DEFAULT_MU = 0.5

# A grid past this many vectors means one training run per vector: refuse it.
MAX_GRID_VECTORS = 2_000_000


def _check_d(d: object) -> int:
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 2:
        raise InputError(
            f"objectives is {d!r}; it must be an integer of at least 2 "
            "(a single objective needs no portfolio)"
        )
    return int(d)


def _check_alpha_mu(alpha: object, mu: object) -> tuple[float, float]:
    if not _is_real(alpha) or not 0.0 < alpha < 1.0:
        raise InputError(
            f"alpha is {alpha!r}; it must be a number in the open interval (0, 1), "
            "e.g. 0.1"
        )
    if not _is_real(mu) or not 0.0 < mu < math.inf:
        raise InputError(f"mu is {mu!r}; it must be a finite number above 0, e.g. 0.5")
    return float(alpha), float(mu)


def _is_real(x: object) -> bool:
    return (
        isinstance(x, numbers.Real)
        and not isinstance(x, bool)
        and math.isfinite(float(x))
    )


def _level_count(alpha: float, mu: float) -> int:
    """|L| without building L, so that a tiny mu is refused before it costs memory."""
    steps = math.log(1.0 / alpha) / math.log1p(mu)
    return 2 + math.ceil(steps)  # 0, the α(1+μ)^k below 1, and 1


def grid_levels(alpha: float, mu: float) -> np.ndarray:
    """The sorted levels {0} ∪ {α(1+μ)^k < 1} ∪ {1}."""
    alpha, mu = _check_alpha_mu(alpha, mu)
    if _level_count(alpha, mu) > MAX_GRID_VECTORS:
        raise InputError(
            f"alpha={alpha} with mu={mu} gives over {MAX_GRID_VECTORS:,} levels; "
            "raise mu or alpha"
        )
    k = np.arange(_level_count(alpha, mu))
    inner = alpha * (1.0 + mu) ** k
    inner = inner[inner < 1.0]
    return np.concatenate(([0.0], inner, [1.0]))


def grid_size_bound(d: int, alpha: float, mu: float) -> int:
    """The bound d·|L|^(d−1) on the grid's size."""
    d = _check_d(d)
    alpha, mu = _check_alpha_mu(alpha, mu)
    return d * _level_count_exact(alpha, mu) ** (d - 1)


def grid_size(d: int, alpha: float, mu: float) -> int:
    """The grid's exact size |L|^d − (|L|−1)^d, computed without building it."""
    d = _check_d(d)
    alpha, mu = _check_alpha_mu(alpha, mu)
    n_levels = _level_count_exact(alpha, mu)
    return n_levels**d - (n_levels - 1) ** d


def _level_count_exact(alpha: float, mu: float) -> int:
    # The closed form can be off by one where α(1+μ)^k lands within rounding of 1.
    if _level_count(alpha, mu) > MAX_GRID_VECTORS:
        return _level_count(alpha, mu)
    return len(grid_levels(alpha, mu))


def geometric_grid(d: int, alpha: float, mu: float) -> np.ndarray:
    """The grid as an (m, d) array of weight vectors on the simplex, no duplicates."""
    d = _check_d(d)
    alpha, mu = _check_alpha_mu(alpha, mu)
    # |L|^(d-1) bounds the size from below: a huge d is refused by logarithms,
    # before the exact size (a power with d digits' worth of work) is computed.
    at_least = (d - 1) * math.log(_level_count(alpha, mu))
    size = None if at_least > math.log(MAX_GRID_VECTORS) else grid_size(d, alpha, mu)
    if size is None or size > MAX_GRID_VECTORS:
        count = f"{size:,}" if size is not None else f"more than {MAX_GRID_VECTORS:,}"
        raise InputError(
            f"the grid for objectives={d}, alpha={alpha}, mu={mu} has {count} "
            f"vectors, over the limit of {MAX_GRID_VECTORS:,} (one policy each); "
            "raise alpha or mu"
        )
    levels = grid_levels(alpha, mu)
    faces = [_face(levels, d, i) for i in range(d)]
    grid = np.concatenate(faces, axis=0)
    grid /= grid.sum(axis=1, keepdims=True)
    logger.debug("grid d=%d alpha=%g mu=%g: %d vectors", d, alpha, mu, len(grid))
    return grid


def _face(levels: np.ndarray, d: int, i: int) -> np.ndarray:
    """Vectors with w_i = 1, coordinates before i below 1, after i anywhere in L."""
    below_one = levels[:-1]
    axes = [below_one] * i + [np.ones(1)] + [levels] * (d - 1 - i)
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
