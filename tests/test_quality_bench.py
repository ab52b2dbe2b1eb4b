"""The quality benchmark's synthetic landscapes, and the comparison on a tiny one."""

import sys
from pathlib import Path

import numpy as np
import pytest

# bench/ is not an installed package; `python -m pytest` finds it from the root, a bare
# `pytest` does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import (  # noqa: E402
    RADIUS,
    SHAPES,
    make_landscape,
    run_problem,
    synthetic_problem,
)
from palm.cover import budget_cover  # noqa: E402
from palm.metrics import gaps, uniform_portfolio  # noqa: E402


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("d", [2, 4])
def test_landscape_policy_for_w_is_best_on_the_front(shape, d):
    # 2,000 front points instead of 20,000: enough to check, quick to build.
    land = make_landscape(shape, d, seed=3, points=2_000)
    weights = np.random.default_rng(0).dirichlet(np.ones(d), size=200)
    best = land.best(weights)
    assert land.front.min() >= 0 and land.front.max() <= 1
    # No sampled front point beats the policy trained (without noise) for w.
    on_front = (weights @ land.front.T).max(axis=1)
    assert np.all(np.sum(weights * best, axis=1) >= on_front - 1e-12)
    trained = land.train(weights, np.random.default_rng(1))
    assert trained.min() >= 0 and trained.max() <= 1
    assert np.abs(trained - best).max() < 10 * land.noise


def test_landscape_dent_is_never_a_best_point():
    # The dent pushes the front in by up to 20 %; a best point never sits deep in it,
    # which is what makes the front non-concave for linear scalarisation.
    dented = make_landscape("dent", 3, seed=0, points=4_000)
    radius = np.linalg.norm(dented.front, axis=1)
    weights = np.random.default_rng(2).dirichlet(np.ones(3), size=2_000)
    chosen = np.linalg.norm(dented.best(weights), axis=1)
    assert radius.min() < 0.85 * RADIUS
    assert chosen.min() > radius.min() + 0.05


def test_budget_exact_is_no_worse_than_nearest_uniform_on_its_weights():
    # Exact budget mode minimises the worst gap over W among all k-subsets of T, and
    # nearest-uniform is one such subset: a proven optimum cannot lose to it on W.
    problem = synthetic_problem("concave", 2, seed=0)
    for k in (2, 3, 5):
        palm = budget_cover(
            problem.rewards, problem.cover_weights, k, "exact", time_limit=10.0
        )
        assert palm.solver == "exact"
        uniform = uniform_portfolio(problem.weights, k)
        theirs = gaps(problem.rewards, uniform, problem.cover_weights)
        assert palm.worst_multiplicative <= theirs["worst_multiplicative"] + 1e-12


def test_run_problem_palm_beats_baselines_on_held_out_weights():
    # The bench's own d = 2 setting (60 policies), seed 0, where PALM wins by 2x. In
    # seed 1 uniform wins at k = 5 and 7: its policy trained afresh at (1/2, 1/2) drew
    # noise 4 % above every trained policy near there, a floor PALM, which picks from
    # the trained set, cannot go below (docs/quality.md says so). It is not a bug.
    results = run_problem(synthetic_problem("concave", 2, seed=0))
    for k in (3, 5, 7):
        palm = results[("PALM budget exact", k)]["worst_multiplicative"]
        for baseline in ("uniform", "uniform (nearest)", "random"):
            assert palm <= results[(baseline, k)]["worst_multiplicative"], (k, baseline)
        assert results[("PALM budget exact", k)]["size"] <= k
    # Cover mode compares at greedy's size, and the certificate bounds the sample.
    cover = results[("PALM greedy", 0)]
    assert results[("uniform", 0)]["size"] == cover["size"]
    assert cover["certified_multiplicative"] >= cover["worst_multiplicative"] - 1e-9
