"""The certificate: exact worst-case gaps over the whole simplex."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from palm.certify import certify, gap_at
from palm.errors import InputError, RewardError

# Tiny matrices (n ≤ 8, d ≤ 4); a 0.05 lattice makes ties and dominance common.
unit = st.integers(0, 20).map(lambda i: i / 20)


@st.composite
def portfolios(draw):
    d = draw(st.integers(2, 4))
    n = draw(st.integers(1, 8))
    rewards = draw(arrays(float, (n, d), elements=unit))
    members = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    return rewards, sorted(members)


def _reference(rewards, members):
    """One LP per q ∈ T, written straight from the definitions, no pruning."""
    d = rewards.shape[1]
    p = rewards[members]
    add, mult = 0.0, 0.0
    for rq in rewards:
        a_ub = np.column_stack([p - rq, np.ones(len(p))])
        res = linprog(
            np.r_[np.zeros(d), -1.0],
            A_ub=a_ub,
            b_ub=np.zeros(len(p)),
            A_eq=[np.r_[np.ones(d), 0.0]],
            b_eq=[1.0],
            bounds=[(0, None)] * d + [(None, None)],
        )
        add = max(add, -res.fun)
        if rq.max() == 0:
            continue
        res = linprog(
            np.r_[np.zeros(d), 1.0],
            A_ub=np.column_stack([p, -np.ones(len(p))]),
            b_ub=np.zeros(len(p)),
            A_eq=[np.r_[rq, 0.0]],
            b_eq=[1.0],
            bounds=[(0, None)] * d + [(None, None)],
        )
        mult = max(mult, 1.0 - res.fun)
    return mult, add


@settings(max_examples=40, deadline=None)
@given(case=portfolios())
def test_certify_matches_one_lp_per_policy(case):
    rewards, members = case
    cert = certify(rewards, members)
    mult, add = _reference(rewards, members)
    assert cert.multiplicative.gap == pytest.approx(mult, abs=1e-7)
    assert cert.additive.gap == pytest.approx(add, abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(case=portfolios(), seed=st.integers(0, 2**16))
def test_certify_bounds_every_sampled_weight_vector(case, seed):
    rewards, members = case
    cert = certify(rewards, members)
    d = rewards.shape[1]
    sample = np.random.default_rng(seed).dirichlet(np.ones(d), size=500)
    sample = np.concatenate([sample, np.eye(d)])
    portfolio = rewards[members]
    measured_mult = gap_at(rewards, portfolio, sample, "multiplicative").max()
    assert cert.multiplicative.gap >= measured_mult - 1e-7
    assert (
        cert.additive.gap >= gap_at(rewards, portfolio, sample, "additive").max() - 1e-7
    )


@settings(max_examples=40, deadline=None)
@given(case=portfolios())
def test_certify_gap_is_attained_at_its_weight_vector(case):
    rewards, members = case
    cert = certify(rewards, members)
    portfolio = rewards[members]
    for kind, gap in (
        ("multiplicative", cert.multiplicative),
        ("additive", cert.additive),
    ):
        assert min(gap.weight) >= 0
        assert sum(gap.weight) == pytest.approx(1.0)
        at = gap_at(rewards, portfolio, np.asarray(gap.weight), kind)[0]
        assert at == pytest.approx(gap.gap, abs=1e-7)


@settings(max_examples=25, deadline=None)
@given(case=portfolios())
def test_certify_whole_set_has_zero_gap(case):
    rewards, _ = case
    cert = certify(rewards, list(range(len(rewards))))
    assert cert.multiplicative.gap == 0.0
    assert cert.additive.gap == 0.0


def test_certify_two_corners_against_the_middle():
    # Members (1,0) and (0,1) against (0.6,0.6): at w=(.5,.5) the best member has
    # 0.5 against 0.6, a multiplicative gap of 1/6 and an additive gap of 0.1.
    rewards = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])
    cert = certify(rewards, [0, 1])
    assert cert.multiplicative.gap == pytest.approx(1 / 6)
    assert cert.additive.gap == pytest.approx(0.1)
    np.testing.assert_allclose(cert.additive.weight, [0.5, 0.5], atol=1e-9)


def test_certify_all_zero_rewards_have_zero_gap():
    cert = certify(np.zeros((4, 3)), [2])
    assert cert.multiplicative.gap == 0.0 and cert.additive.gap == 0.0


def test_certify_to_json_has_exactly_the_contract_keys():
    out = certify(np.array([[1.0, 0.0], [0.0, 1.0]]), [0]).to_json()
    assert set(out) == {"multiplicative", "additive"}
    for part in out.values():
        assert set(part) == {"gap", "weight"}
        assert isinstance(part["gap"], float) and len(part["weight"]) == 2
    assert out["multiplicative"]["gap"] == pytest.approx(1.0)


def test_certify_rejects_empty_portfolio():
    with pytest.raises(InputError, match="portfolio is empty"):
        certify(np.ones((2, 2)) / 2, [])


def test_certify_rejects_member_out_of_range():
    with pytest.raises(InputError, match="member index 5 is outside the 2 policies"):
        certify(np.ones((2, 2)) / 2, [5])


def test_certify_rejects_rewards_outside_unit_interval():
    with pytest.raises(RewardError, match=r"in \[0, 1\]"):
        certify(np.array([[-0.5, 0.5]]), [0])
