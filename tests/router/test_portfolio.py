"""palm.portfolio: reading, checking and announcing portfolio versions."""

from __future__ import annotations

import copy
import json
import math

import pytest

from palm.errors import InputError, StoreError
from palm.portfolio import (
    PORTFOLIO_CHANNEL,
    Portfolio,
    load_portfolio,
    normalise_weights,
    publish_version,
)


@pytest.fixture
def doc(portfolio_path) -> dict:
    return json.loads(portfolio_path.read_text())


def test_portfolio_round_trips_through_dict(doc):
    portfolio = Portfolio.from_dict(doc)
    again = Portfolio.from_dict(portfolio.to_dict())
    assert again == portfolio
    assert portfolio.member("p0002").rewards == tuple(doc["members"][2]["rewards"])


def test_load_portfolio_reads_a_path(portfolio_path, doc):
    portfolio = load_portfolio(str(portfolio_path))
    assert portfolio.version == 1
    assert [m.id for m in portfolio.members] == [m["id"] for m in doc["members"]]


def test_load_portfolio_reads_a_file_url(portfolio_path):
    assert load_portfolio(f"file://{portfolio_path}").build == "tiny-router"


def test_load_portfolio_not_json_is_store_error(tmp_path):
    (tmp_path / "portfolio.json").write_text("{not json")
    with pytest.raises(StoreError, match="is not JSON"):
        load_portfolio(str(tmp_path / "portfolio.json"))


def _broken(doc, change):
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


BROKEN = [
    pytest.param(
        lambda d: d["members"][0].update(rewards=[0.1, 0.2]),
        r"members\[0\].rewards has 2 entries; it must have one per objective \(3\)",
        id="rewards-length",
    ),
    pytest.param(
        lambda d: d["members"][1]["rewards"].__setitem__(0, math.nan),
        r"members\[1\].rewards\[0\] is nan; it must be finite",
        id="nan",
    ),
    pytest.param(
        lambda d: d["members"][1]["rewards"].__setitem__(2, 1.5),
        r"members\[1\].rewards\[2\] is 1.5; rewards are in \[0, 1\]",
        id="reward-range",
    ),
    pytest.param(
        lambda d: d.update(format="palm.portfolio/9"),
        "format is 'palm.portfolio/9'; this reader knows only 'palm.portfolio/1'",
        id="format",
    ),
    pytest.param(
        lambda d: d["members"][1].update(id="p0000"),
        "members list the id 'p0000' twice",
        id="duplicate-id",
    ),
    pytest.param(lambda d: d.update(members=[]), "members must be", id="no-members"),
    pytest.param(
        lambda d: d["members"][0].update(id="a.b"), r"members\[0\].id", id="bad-id"
    ),
    pytest.param(
        lambda d: d["members"][0].pop("adapter"),
        r"members\[0\].adapter is None",
        id="no-adapter",
    ),
    pytest.param(lambda d: d.update(version=0), "version is 0", id="version"),
    pytest.param(lambda d: d.update(epsilon=-1), "epsilon is -1", id="epsilon"),
    pytest.param(
        lambda d: d["certificate"]["additive"].update(weight=[1.0]),
        r"certificate.additive.weight has 1 entries",
        id="certificate-weight",
    ),
    pytest.param(
        lambda d: d.update(objectives=["a", "a", "b"]),
        "names must be distinct",
        id="objectives",
    ),
    pytest.param(lambda d: d.update(trained=1), "trained is 1", id="trained"),
]


@pytest.mark.parametrize(("change", "message"), BROKEN)
def test_portfolio_from_dict_refuses_broken(doc, change, message):
    with pytest.raises(InputError, match=message) as info:
        Portfolio.from_dict(_broken(doc, change), source="P.json")
    assert str(info.value).startswith("P.json: ")


def test_portfolio_route_ties_go_to_first_member(doc):
    for m in doc["members"]:
        m["rewards"] = [0.5, 0.5, 0.5]
    member, value = Portfolio.from_dict(doc).route([0.2, 0.3, 0.5])
    assert member.id == "p0000" and value == pytest.approx(0.5)


def test_normalise_weights_scales_to_one():
    assert normalise_weights([1, 1, 2], ["a", "b", "c"]) == [0.25, 0.25, 0.5]


def test_portfolio_member_unknown_names_the_known(doc):
    with pytest.raises(InputError, match="its members are: p0000, p0001"):
        Portfolio.from_dict(doc).member("nope")


class _FakeRedis:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def publish(self, channel: str, message: str) -> int:
        self.sent.append((channel, message))
        return 1


def test_publish_version_sends_build_version_and_url(doc):
    redis = _FakeRedis()
    portfolio = Portfolio.from_dict(doc)
    assert publish_version(redis, portfolio, "s3://bucket/p.json") == 1
    channel, message = redis.sent[0]
    assert channel == PORTFOLIO_CHANNEL == "palm:portfolios"
    assert json.loads(message) == {
        "build": "tiny-router",
        "version": 1,
        "portfolio": "s3://bucket/p.json",
    }
