"""Baselines (uniform, random) and metrics (gaps, usage perplexity)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palm.errors import InputError
from palm.metrics import (
    gaps,
    random_portfolio,
    uniform_portfolio,
    uniform_weights,
    usage_perplexity,
)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(2, 5), k=st.integers(1, 30))
def test_uniform_weights_are_k_distinct_vectors_on_the_simplex(d, k):
    weights = uniform_weights(d, k)
    assert weights.shape == (k, d)
    assert weights.min() >= 0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert len(np.unique(np.round(weights, 9), axis=0)) == k
    np.testing.assert_array_equal(weights, uniform_weights(d, k))


def test_uniform_weights_two_objectives_are_evenly_spaced():
    weights = uniform_weights(2, 5)
    np.testing.assert_allclose(np.sort(weights[:, 0]), np.linspace(0, 1, 5))


def test_uniform_weights_one_is_the_centre():
    np.testing.assert_allclose(uniform_weights(4, 1), [[0.25] * 4])


def test_uniform_weights_take_the_vertices_first():
    np.testing.assert_allclose(uniform_weights(3, 3), np.eye(3))


def test_uniform_portfolio_picks_policies_trained_on_the_uniform_vectors():
    targets = uniform_weights(3, 4)
    rng = np.random.default_rng(0)
    others = rng.dirichlet(np.ones(3), size=20)
    policy_weights = np.concatenate([others[:10], targets, others[10:]])
    assert uniform_portfolio(policy_weights, 4) == [10, 11, 12, 13]


def test_uniform_portfolio_members_are_distinct_and_at_most_n():
    policy_weights = np.array([[1.0, 0.0], [0.9, 0.1]])
    assert uniform_portfolio(policy_weights, 2) == [0, 1]
    assert uniform_portfolio(policy_weights, 5) == [0, 1]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 50), k=st.integers(1, 60), seed=st.integers(0, 100))
def test_random_portfolio_is_distinct_in_range_and_seeded(n, k, seed):
    members = random_portfolio(n, k, seed)
    assert len(members) == min(n, k) == len(set(members))
    assert all(0 <= i < n for i in members)
    assert members == random_portfolio(n, k, seed)


@pytest.mark.parametrize("k", [0, -2, 1.5, True], ids=repr)
def test_random_portfolio_rejects_bad_k(k):
    with pytest.raises(InputError, match="k is .*integer ≥ 1"):
        random_portfolio(10, k)


def test_gaps_are_zero_for_the_whole_set():
    rng = np.random.default_rng(1)
    rewards, weights = rng.random((10, 3)), rng.dirichlet(np.ones(3), 100)
    out = gaps(rewards, range(10), weights)
    assert out == {
        "worst_multiplicative": 0.0,
        "mean_multiplicative": 0.0,
        "worst_additive": 0.0,
        "mean_additive": 0.0,
    }


def test_gaps_by_hand():
    rewards = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])
    weights = np.array([[0.5, 0.5], [1.0, 0.0]])
    out = gaps(rewards, [0, 1], weights)
    assert out["worst_multiplicative"] == pytest.approx(1 / 6)
    assert out["mean_multiplicative"] == pytest.approx(1 / 12)
    assert out["worst_additive"] == pytest.approx(0.1)
    assert out["mean_additive"] == pytest.approx(0.05)


def test_gaps_reject_mismatched_weights():
    with pytest.raises(InputError, match="each weight vector needs 2 entries"):
        gaps(np.ones((2, 2)), [0], np.ones((3, 3)) / 3)


def test_usage_perplexity_one_member_is_one():
    rng = np.random.default_rng(2)
    assert usage_perplexity(rng.random((5, 3)), [3], rng.dirichlet(np.ones(3), 50)) == 1


def test_usage_perplexity_even_split_is_member_count():
    rewards = np.array([[1.0, 0.0], [0.0, 1.0]])
    weights = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert usage_perplexity(rewards, [0, 1], weights) == pytest.approx(2.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), k=st.integers(1, 6))
def test_usage_perplexity_is_between_one_and_k(seed, k):
    rng = np.random.default_rng(seed)
    rewards, weights = rng.random((8, 3)), rng.dirichlet(np.ones(3), 40)
    value = usage_perplexity(rewards, list(range(k)), weights)
    assert 1.0 - 1e-12 <= value <= k + 1e-12
