"""Benchmark: pruning (greedy, exact, budget) and the certificate on synthetic fronts.

    .venv/bin/python bench/cover.py

The ratio it exists for: greedy's time over the time of the one matrix product
`weights @ rewards.T` that every cover must pay (the floor). Progress goes to stderr,
the tables to stdout.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from palm.certify import certify
from palm.cover import budget_cover, cover, default_weights
from palm.grid import DEFAULT_ALPHA, DEFAULT_MU, grid_size

EPSILON = 0.05
EXACT_TIME_LIMIT = 30.0  # the CLI default
# (d, policies, weight vectors): the weight vectors are the default grid plus as many
# uniform samples as bring the total to the target (or the grid alone, if larger).
CASES = [(d, n, m) for d in (2, 3, 4, 5) for n, m in ((100, 2_000), (1_000, 20_000))]


def front(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Reward vectors on a concave front (a sphere's positive orthant) with noise."""
    rng = np.random.default_rng(seed)
    direction = rng.dirichlet(np.ones(d), size=n)
    on_front = 0.9 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    return np.clip(on_front + rng.normal(0.0, 0.02, on_front.shape), 0.0, 1.0)


def best_of(fn, *args, repeat: int = 3, **kwargs) -> tuple[float, Any]:
    """Best wall time of `repeat` calls (the least disturbed by other load)."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), out


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def row(d: int, n: int, m: int) -> list[str]:
    rewards = front(n, d)
    samples = max(0, m - grid_size(d, DEFAULT_ALPHA, DEFAULT_MU))
    weights = default_weights(d, samples=samples, seed=1)
    # The floor: the one product of all scalarised values, in its faster layout.
    floor = min(
        best_of(np.matmul, weights, rewards.T, repeat=5)[0],
        best_of(np.matmul, rewards, weights.T, repeat=5)[0],
    )
    t_greedy, greedy = best_of(cover, rewards, weights, EPSILON, 0.0)
    t_exact, exact = best_of(
        cover, rewards, weights, EPSILON, 0.0, "exact", EXACT_TIME_LIMIT, repeat=1
    )
    t_cert, _ = best_of(certify, rewards, greedy.members)
    solver = "" if exact.solver == "exact" else " *"
    return [
        str(d),
        str(n),
        str(len(weights)),
        str(grid_size(d, DEFAULT_ALPHA, DEFAULT_MU)),
        f"{1e3 * floor:.1f}",
        f"{1e3 * t_greedy:.1f}",
        f"{t_greedy / floor:.1f}",
        f"{t_exact:.2f}{solver}",
        f"{len(greedy.members)}/{len(exact.members)}",
        f"{1e3 * t_cert:.0f}",
    ]


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cover_table() -> str:
    rows = []
    for d, n, m in CASES:
        progress(f"cover: d={d} n={n} m≈{m} ...")
        rows.append(row(d, n, m))
    headers = [
        "d",
        "policies",
        "weights m",
        "grid",
        "floor ms",
        "greedy ms",
        "greedy/floor",
        "exact s",
        "members greedy/exact",
        "certificate ms",
    ]
    return markdown(headers, rows)


def budget_table() -> str:
    rows = []
    for d, k in ((3, 5), (3, 10), (4, 8)):
        progress(f"budget: d={d} n=150 m=6000 k={k} ...")
        rewards = front(150, d, seed=2)
        samples = 6_000 - grid_size(d, DEFAULT_ALPHA, DEFAULT_MU)
        weights = default_weights(d, samples=samples, seed=3)
        t_g, greedy = best_of(budget_cover, rewards, weights, k, repeat=1)
        t_e, exact = best_of(
            budget_cover, rewards, weights, k, "exact", time_limit=120.0, repeat=1
        )
        rows.append(
            [
                str(d),
                str(k),
                f"{greedy.epsilon:.4f}",
                f"{t_g:.2f}",
                f"{exact.epsilon:.4f}",
                f"{t_e:.2f}",
                exact.solver,
            ]
        )
    headers = ["d", "k", "ε greedy", "greedy s", "ε exact", "exact s", "solver"]
    return markdown(headers, rows)


def certificate_table() -> str:
    rows = []
    for d in (2, 3, 5, 8):
        progress(f"certificate: d={d} 10 members vs 1000 policies ...")
        rewards = front(1_000, d, seed=4)
        weights = default_weights(d, samples=2_000) if d <= 5 else None
        if weights is None:
            members = list(range(10))  # the grid for d=8 is large; any 10 will do
        else:
            members = budget_cover(rewards, weights, 10).members
        t, cert = best_of(certify, rewards, members)
        rows.append(
            [
                str(d),
                str(len(members)),
                f"{cert.multiplicative.gap:.4f}",
                f"{cert.additive.gap:.4f}",
                f"{1e3 * t:.0f}",
            ]
        )
    headers = ["d", "members", "multiplicative gap", "additive gap", "ms"]
    return markdown(headers, rows)


def main() -> None:
    started = time.perf_counter()
    print(
        f"machine: {os.cpu_count()} CPU cores visible, {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}\n"
    )
    print(f"## Cover (epsilon {EPSILON}, delta 0)\n")
    print(cover_table() + "\n")
    print("## Budget mode (150 policies, 6000 weight vectors)\n")
    print(budget_table() + "\n")
    print("## Certificate (10 members vs 1000 policies)\n")
    print(certificate_table() + "\n")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
