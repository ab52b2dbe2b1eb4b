"""The geometric grid: on the simplex, vertices included, no duplicates, bounded."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palm.errors import InputError
from palm.grid import (
    MAX_GRID_VECTORS,
    geometric_grid,
    grid_levels,
    grid_size,
    grid_size_bound,
)

# Small grids only: d ≤ 4 and mu ≥ 0.2 keep every example below a few thousand vectors.
dims = st.integers(min_value=2, max_value=4)
alphas = st.floats(min_value=0.05, max_value=0.95)
mus = st.floats(min_value=0.2, max_value=3.0)


@settings(max_examples=40, deadline=None)
@given(d=dims, alpha=alphas, mu=mus)
def test_grid_vectors_are_on_the_simplex(d, alpha, mu):
    grid = geometric_grid(d, alpha, mu)
    assert grid.shape[1] == d
    assert np.all(grid >= 0)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(d=dims, alpha=alphas, mu=mus)
def test_grid_contains_every_vertex(d, alpha, mu):
    grid = geometric_grid(d, alpha, mu)
    for vertex in np.eye(d):
        assert np.any(np.all(np.isclose(grid, vertex, atol=1e-12), axis=1))


@settings(max_examples=40, deadline=None)
@given(d=dims, alpha=alphas, mu=mus)
def test_grid_size_is_exact_and_within_bound(d, alpha, mu):
    grid = geometric_grid(d, alpha, mu)
    assert len(grid) == grid_size(d, alpha, mu)
    assert len(grid) <= grid_size_bound(d, alpha, mu)
    assert grid_size_bound(d, alpha, mu) == d * len(grid_levels(alpha, mu)) ** (d - 1)


@settings(max_examples=40, deadline=None)
@given(d=dims, alpha=alphas, mu=mus)
def test_grid_has_no_duplicates(d, alpha, mu):
    grid = geometric_grid(d, alpha, mu)
    assert len(np.unique(np.round(grid, 9), axis=0)) == len(grid)


@settings(max_examples=40, deadline=None)
@given(d=dims, alpha=alphas, mu=mus)
def test_grid_vectors_rescaled_to_max_one_have_coordinates_in_levels(d, alpha, mu):
    levels = grid_levels(alpha, mu)
    scaled = geometric_grid(d, alpha, mu)
    scaled = scaled / scaled.max(axis=1, keepdims=True)
    distance = np.abs(scaled[:, :, None] - levels[None, None, :]).min(axis=2)
    assert distance.max() < 1e-9


@settings(max_examples=40, deadline=None)
@given(alpha=alphas, mu=mus)
def test_grid_levels_are_zero_geometric_steps_and_one(alpha, mu):
    levels = grid_levels(alpha, mu)
    assert levels[0] == 0.0 and levels[-1] == 1.0
    inner = levels[1:-1]
    assert inner[0] == pytest.approx(alpha)
    assert np.all(inner < 1.0)
    np.testing.assert_allclose(inner[1:] / inner[:-1], 1.0 + mu)
    assert inner[-1] * (1.0 + mu) >= 1.0 - 1e-12


def test_grid_small_case_matches_hand_count():
    # L = {0, 0.5, 1}: (1,0), (1,.5), (1,1), (.5,1), (0,1), normalised.
    grid = geometric_grid(2, 0.5, 1.0)
    expected = np.array([[1, 0], [2 / 3, 1 / 3], [0.5, 0.5], [1 / 3, 2 / 3], [0, 1]])
    got = grid[np.argsort(-grid[:, 0])]
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("d", [1, 0, -3, 2.5, True, "3"], ids=repr)
def test_grid_rejects_bad_objective_count(d):
    with pytest.raises(InputError, match="objectives is .*at least 2"):
        geometric_grid(d, 0.1, 0.5)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.2, 1.5, math.nan, math.inf])
def test_grid_rejects_alpha_outside_open_unit_interval(alpha):
    with pytest.raises(InputError, match=r"alpha is .*open interval \(0, 1\)"):
        geometric_grid(3, alpha, 0.5)


@pytest.mark.parametrize("mu", [0.0, -1.0, math.nan, math.inf])
def test_grid_rejects_mu_not_positive(mu):
    with pytest.raises(InputError, match="mu is .*above 0"):
        geometric_grid(3, 0.1, mu)


def test_grid_refuses_absurd_size_before_building():
    assert grid_size(6, 0.001, 0.01) > MAX_GRID_VECTORS
    with pytest.raises(InputError, match="over the limit"):
        geometric_grid(6, 0.001, 0.01)


def test_grid_levels_refuse_absurd_level_count():
    with pytest.raises(InputError, match="levels; raise mu"):
        grid_levels(0.1, 1e-12)
    with pytest.raises(InputError, match="over the limit"):
        geometric_grid(2, 0.1, 1e-12)
