"""Coverage, greedy and exact covers, budget mode, and the R.json / W.json readers."""

import itertools
import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import palm.cover
from palm.cover import (
    RewardMatrix,
    budget_cover,
    cover,
    coverage,
    default_weights,
    exact_cover,
    greedy_cover,
    load_weights,
)
from palm.errors import InputError, RewardError
from palm.grid import geometric_grid

# Tiny problems (n ≤ 7 policies, m ≤ 25 weight vectors) so brute force stays cheap.
# Rewards on a 0.05 lattice make ties between policies common, as in real matrices.
unit = st.integers(0, 20).map(lambda i: i / 20)


@st.composite
def problems(draw, max_n=7):
    d = draw(st.integers(2, 4))
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, 25))
    rewards = draw(arrays(float, (n, d), elements=unit))
    raw = draw(arrays(float, (m, d), elements=st.floats(0.0, 1.0)))
    raw[raw.sum(axis=1) == 0] = 1.0
    return rewards, raw / raw.sum(axis=1, keepdims=True)


tolerances = st.sampled_from([0.0, 0.01, 0.05, 0.2])


def _is_cover(rewards, weights, members, eps, dlt):
    return bool(coverage(rewards, weights, eps, dlt)[:, members].any(axis=1).all())


def _minimum_cover_size(rewards, weights, eps, dlt):
    n = len(rewards)
    for size in range(1, n + 1):
        for subset in itertools.combinations(range(n), size):
            if _is_cover(rewards, weights, list(subset), eps, dlt):
                return size
    raise AssertionError("the whole set always covers")


def _best_budget_gap(rewards, weights, k, kind):
    values = weights @ rewards.T
    best = values.max(axis=1, keepdims=True)
    if kind == "additive":
        gaps = best - values
    else:
        gaps = 1 - np.divide(values, best, out=np.ones_like(values), where=best > 0)
    n = len(rewards)
    return min(
        gaps[:, list(s)].min(axis=1).max()
        for s in itertools.combinations(range(n), min(k, n))
    )


# --------------------------------------------------------------------------- coverage


@settings(max_examples=40, deadline=None)
@given(problem=problems(), eps=tolerances, dlt=tolerances)
def test_coverage_best_policy_always_covers(problem, eps, dlt):
    rewards, weights = problem
    cov = coverage(rewards, weights, eps, dlt)
    assert cov.shape == (len(weights), len(rewards))
    best = (weights @ rewards.T).argmax(axis=1)
    assert cov[np.arange(len(weights)), best].all()


def test_coverage_matches_definition_by_hand():
    rewards = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    cov = coverage(rewards, weights, 0.1, 0.0)
    # w=(1,0): values 1, 0, .5 -> only policy 0; w=(.5,.5): all .5 -> every policy.
    assert cov.tolist() == [[True, False, False], [True, True, True]]
    assert coverage(rewards, weights, 0.5, 0.0)[0].tolist() == [True, False, True]


# --------------------------------------------------------------------------- cover


@settings(max_examples=40, deadline=None)
@given(problem=problems(), eps=tolerances, dlt=tolerances)
def test_cover_greedy_is_a_valid_cover(problem, eps, dlt):
    rewards, weights = problem
    result = greedy_cover(rewards, weights, eps, dlt)
    assert result.solver == "greedy"
    assert result.covered == 1.0
    assert _is_cover(rewards, weights, result.members, eps, dlt)
    assert result.members == sorted(set(result.members))


@settings(max_examples=40, deadline=None)
@given(problem=problems(), eps=tolerances, dlt=tolerances)
def test_cover_exact_is_a_minimum_cover_no_larger_than_greedy(problem, eps, dlt):
    rewards, weights = problem
    exact = exact_cover(rewards, weights, eps, dlt)
    greedy = greedy_cover(rewards, weights, eps, dlt)
    assert exact.solver == "exact"
    assert _is_cover(rewards, weights, exact.members, eps, dlt)
    assert len(exact.members) <= len(greedy.members)
    assert len(exact.members) == _minimum_cover_size(rewards, weights, eps, dlt)


@settings(max_examples=25, deadline=None)
@given(problem=problems(), eps=tolerances)
def test_cover_reports_worst_gaps_within_tolerance(problem, eps):
    rewards, weights = problem
    result = cover(rewards, weights, eps, 0.0)
    assert 0.0 <= result.worst_multiplicative <= eps + 1e-9
    assert result.n_weights == len(weights)


def test_cover_exact_timeout_falls_back_to_greedy_and_says_so(monkeypatch, caplog):
    class TimedOut:
        status, x = 1, None

    monkeypatch.setattr(palm.cover, "milp", lambda *a, **k: TimedOut())
    rewards = np.random.default_rng(0).random((8, 3))
    weights = default_weights(3, samples=50)
    with caplog.at_level(logging.WARNING, logger="palm.cover"):
        result = cover(rewards, weights, 0.05, 0.0, solver="exact", time_limit=2)
    assert result.solver == "greedy (exact timed out after 2s)"
    assert result.members == greedy_cover(rewards, weights, 0.05, 0.0).members
    assert "timed out" in caplog.text


def test_cover_rejects_unknown_solver():
    with pytest.raises(InputError, match="solver is 'ilp'; it must be one of"):
        cover(np.ones((2, 2)) / 2, np.eye(2), 0.1, 0.0, solver="ilp")


@pytest.mark.parametrize("eps", [1.0, -0.01, math.nan, "0.1"], ids=repr)
def test_cover_rejects_epsilon_outside_unit_interval(eps):
    with pytest.raises(InputError, match=r"epsilon is .*in \[0, 1\)"):
        cover(np.ones((2, 2)) / 2, np.eye(2), eps, 0.0)


@pytest.mark.parametrize("dlt", [-0.1, math.inf, math.nan])
def test_cover_rejects_negative_or_infinite_delta(dlt):
    with pytest.raises(InputError, match="delta is .*≥ 0"):
        cover(np.ones((2, 2)) / 2, np.eye(2), 0.1, dlt)


def test_cover_rejects_mismatched_objectives():
    with pytest.raises(InputError, match="weight vectors have 3 entries.*2 objectives"):
        cover(np.ones((2, 2)) / 2, np.eye(3), 0.1, 0.0)


def test_cover_rejects_rewards_outside_unit_interval():
    with pytest.raises(RewardError, match=r"in \[0, 1\]"):
        cover(np.array([[1.5, 0.0]]), np.eye(2), 0.1, 0.0)


# --------------------------------------------------------------------------- budget


@settings(max_examples=30, deadline=None)
@given(
    problem=problems(max_n=6),
    k=st.integers(1, 3),
    kind=st.sampled_from(["multiplicative", "additive"]),
)
def test_budget_exact_is_the_true_minimum_and_beats_greedy(problem, k, kind):
    rewards, weights = problem
    exact = budget_cover(rewards, weights, k, solver="exact", kind=kind)
    greedy = budget_cover(rewards, weights, k, solver="greedy", kind=kind)
    reached = exact.epsilon if kind == "multiplicative" else exact.delta
    estimate = greedy.epsilon if kind == "multiplicative" else greedy.delta
    assert exact.solver == "exact"
    assert len(exact.members) <= k and len(greedy.members) <= k
    assert reached <= estimate + 1e-12
    assert reached == pytest.approx(_best_budget_gap(rewards, weights, k, kind))


@settings(max_examples=30, deadline=None)
@given(
    problem=problems(), k=st.integers(1, 3), solver=st.sampled_from(["greedy", "exact"])
)
def test_budget_members_achieve_the_reported_tolerance(problem, k, solver):
    rewards, weights = problem
    result = budget_cover(rewards, weights, k, solver=solver)
    assert result.budget == k and result.kind == "multiplicative"
    assert _is_cover(rewards, weights, result.members, min(result.epsilon, 0.999), 0)
    add = budget_cover(rewards, weights, k, solver=solver, kind="additive")
    assert _is_cover(rewards, weights, add.members, 0.0, add.delta)


def test_budget_exact_timeout_keeps_greedy_answer_and_says_so(monkeypatch):
    class TimedOut:
        status, x = 1, None

    monkeypatch.setattr(palm.cover, "milp", lambda *a, **k: TimedOut())
    rng = np.random.default_rng(3)
    rewards, weights = rng.random((12, 3)), default_weights(3, samples=200)
    result = budget_cover(rewards, weights, 2, solver="exact", time_limit=1)
    greedy = budget_cover(rewards, weights, 2, solver="greedy")
    assert result.solver.endswith("(exact timed out after 1s)")
    assert result.epsilon <= greedy.epsilon


@pytest.mark.parametrize("k", [0, -1, 1.5, True], ids=repr)
def test_budget_rejects_bad_k(k):
    with pytest.raises(InputError, match="budget is .*integer ≥ 1"):
        budget_cover(np.ones((2, 2)) / 2, np.eye(2), k)


def test_budget_rejects_unknown_kind():
    with pytest.raises(InputError, match="kind is 'relative'"):
        budget_cover(np.ones((2, 2)) / 2, np.eye(2), 1, kind="relative")


# --------------------------------------------------------------------------- weights


def test_default_weights_are_grid_plus_dirichlet_sample():
    weights = default_weights(3, 0.2, 1.0, samples=100, seed=1)
    grid = geometric_grid(3, 0.2, 1.0)
    assert weights.shape == (len(grid) + 100, 3)
    np.testing.assert_array_equal(weights[: len(grid)], grid)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_array_equal(weights, default_weights(3, 0.2, 1.0, 100, seed=1))


def test_default_weights_reject_negative_samples():
    with pytest.raises(InputError, match="samples is -1"):
        default_weights(3, samples=-1)


def test_load_weights_normalises_list_and_object_forms():
    listed = load_weights([[2, 2], [0, 1]])
    wrapped = load_weights({"weights": [[2, 2], [0, 1]]}, d=2)
    np.testing.assert_allclose(listed, [[0.5, 0.5], [0, 1]])
    np.testing.assert_array_equal(listed, wrapped)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "non-empty list"),
        ({"vectors": [[1, 0]]}, "non-empty list"),
        ([[1, 0], [1, 0, 0]], "has 3 weight.*2 objectives"),
        ([[1, -0.5]], "non-negative"),
        ([[0, 0]], "positive sum"),
        ([[1, "x"]], "must be a number"),
        ([[1, math.nan]], "finite"),
    ],
    ids=["empty", "no-key", "length", "negative", "zero", "string", "nan"],
)
def test_load_weights_rejects_bad_vectors(obj, message):
    with pytest.raises(InputError, match=message):
        load_weights(obj, d=2)


# --------------------------------------------------------------------------- R.json


def _matrix_json(**change):
    obj = {
        "objectives": ["brevity", "warmth"],
        "policies": [
            {"id": "a", "weight": [1, 0], "rewards": [0.9, 0.1]},
            {"id": "b", "weight": [0, 1], "rewards": [0.2, 0.8]},
        ],
    }
    obj.update(change)
    return obj


def test_reward_matrix_round_trips_through_json():
    matrix = RewardMatrix.from_json(_matrix_json())
    assert matrix.ids == ("a", "b") and matrix.d == 2 and matrix.n == 2
    np.testing.assert_array_equal(matrix.rewards, [[0.9, 0.1], [0.2, 0.8]])
    again = RewardMatrix.from_json(matrix.to_json())
    np.testing.assert_array_equal(again.weights, matrix.weights)
    assert matrix.indices_of(["b", "a"]) == [1, 0]


def test_reward_matrix_weights_and_stderr_are_optional():
    policies = [{"id": "a", "rewards": [0.5, 0.5], "stderr": [0.01, 0.02]}]
    matrix = RewardMatrix.from_json(_matrix_json(policies=policies))
    assert matrix.weights is None
    np.testing.assert_array_equal(matrix.stderr, [[0.01, 0.02]])


def _policy(rewards, pid="bad", **extra):
    return {"id": pid, "rewards": rewards, **extra}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policies": [_policy([math.nan, 0.5])]}, "'bad' has rewards entry nan"),
        ({"policies": [_policy([math.inf, 0.5])]}, "'bad' has rewards entry inf"),
        ({"policies": [_policy([-0.1, 0.5])]}, r"'bad' has reward -0.1.*\[0, 1\]"),
        ({"policies": [_policy([1.2, 0.5])]}, r"'bad' has reward 1.2.*\[0, 1\]"),
        ({"policies": [_policy([0.5])]}, "'bad' has 1 rewards.*2 objectives"),
        ({"policies": [_policy(["0.5", 0.5])]}, "'bad' has rewards entry '0.5'"),
        ({"policies": [_policy([True, 0.5])]}, "'bad' has rewards entry True"),
        ({"policies": [_policy(0.5)]}, "'bad' has rewards 0.5; it must be a list"),
        ({"policies": [_policy([0.5, 0.5], weight=[1])]}, "'bad' has 1 weight"),
        ({"policies": [_policy([0.5, 0.5], weight=[-1, 2])]}, "non-negative"),
        ({"policies": []}, '"policies" is \\[\\]; it must be a non-empty list'),
        ({"policies": [_policy([0.5, 0.5], "x"), _policy([0.1, 0.1], "x")]}, "twice"),
        ({"policies": [_policy([0.5, 0.5], "")]}, "non-empty string"),
        ({"policies": ["a"]}, "policy #0 is 'a'"),
        ({"objectives": []}, '"objectives" is \\[\\]'),
        ({"objectives": ["a", "a"]}, "distinct"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "above-one",
        "length",
        "string",
        "bool",
        "scalar",
        "weight-length",
        "weight-negative",
        "empty",
        "duplicate",
        "empty-id",
        "not-object",
        "no-objectives",
        "same-objective",
    ],
)
def test_reward_matrix_rejects_bad_input(change, message):
    with pytest.raises(InputError, match=message):
        RewardMatrix.from_json(_matrix_json(**change))


def test_reward_matrix_rejects_weight_on_some_policies_only():
    policies = [_policy([0.5, 0.5], "a", weight=[1, 1]), _policy([0.5, 0.5], "b")]
    with pytest.raises(InputError, match="'b' has no \"weight\" while others do"):
        RewardMatrix.from_json(_matrix_json(policies=policies))


def test_reward_matrix_rejects_non_object():
    with pytest.raises(InputError, match="is a JSON list"):
        RewardMatrix.from_json([1, 2])


def test_reward_matrix_rejects_unknown_id():
    with pytest.raises(InputError, match="policy id 'zz' is not in the reward matrix"):
        RewardMatrix.from_json(_matrix_json()).indices_of(["zz"])
