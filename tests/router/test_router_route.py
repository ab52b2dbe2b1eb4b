"""Route and GetPortfolio against the portfolio file, health and reflection."""

from __future__ import annotations

import json

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from palm.client import RouterClient
from palm.router.v1 import router_pb2 as pb

from .conftest import channel_to

weight = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
weights = st.lists(weight, min_size=3, max_size=3).filter(lambda w: sum(w) > 0)


@settings(max_examples=150, deadline=None)
@given(w=weights)
def test_route_matches_argmax_of_portfolio_file(stub, portfolio_path, w):
    doc = json.loads(portfolio_path.read_text())
    rewards = np.array([m["rewards"] for m in doc["members"]])
    normalised = np.array(w) / sum(w)
    values = rewards @ normalised
    reply = stub.Route(pb.RouteRequest(weights=w))
    chosen = [m["id"] for m in doc["members"]].index(reply.member_id)
    # The chosen member is a best one (ties may go either way by rounding).
    assert values[chosen] >= values.max() - 1e-12
    assert reply.value == np.float64(reply.value)
    assert abs(reply.value - values[chosen]) < 1e-12
    assert list(reply.rewards) == doc["members"][chosen]["rewards"]
    assert abs(sum(reply.weights) - 1.0) < 1e-12
    assert reply.portfolio_version == 1
    assert reply.certificate.multiplicative.gap == 0.012
    assert reply.certificate.additive.gap == 0.004


def test_route_client_matches_stub(router, stub):
    with RouterClient(f"127.0.0.1:{router.port}") as client:
        reply = client.route([0.2, 0.5, 0.3])
        portfolio = client.portfolio()
    expected = stub.Route(pb.RouteRequest(weights=[0.2, 0.5, 0.3]))
    assert reply["member_id"] == expected.member_id
    assert reply["certificate"]["additive"]["gap"] == 0.004
    assert portfolio["version"] == 1
    assert [m["id"] for m in portfolio["members"]] == [
        "p0000",
        "p0001",
        "p0002",
        "p0003",
    ]


def test_get_portfolio_reports_the_file(stub, portfolio_path):
    doc = json.loads(portfolio_path.read_text())
    reply = stub.GetPortfolio(pb.GetPortfolioRequest())
    assert reply.build == doc["build"]
    assert list(reply.objectives) == doc["objectives"]
    assert [list(m.rewards) for m in reply.members] == [
        m["rewards"] for m in doc["members"]
    ]
    assert reply.solver == "greedy" and reply.epsilon == 0.05


def test_health_reports_serving(router):
    with channel_to(router) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "palm.router.v1.Router"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_router(router):
    with channel_to(router) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request])))
        names = {s.name for s in reply.list_services_response.service}
    assert "palm.router.v1.Router" in names
    assert "grpc.health.v1.Health" in names


def test_route_unknown_service_health_is_not_found(router):
    with channel_to(router) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        try:
            health.Check(health_pb2.HealthCheckRequest(service="nope"))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND


def test_route_serves_a_base_model_given_by_path(
    start_router, portfolio_path, tmp_path
):
    """A spec may name any local model folder as its base; it is never published to
    the store, so it has no `_COMPLETE` marker, and the router still loads it."""
    import shutil

    from palm.store import COMPLETE

    doc = json.loads(portfolio_path.read_text())
    base = tmp_path / "my-model"
    shutil.copytree(doc["base_model"], base, ignore=shutil.ignore_patterns(COMPLETE))
    assert not (base / COMPLETE).exists()
    path = tmp_path / "portfolio.json"
    path.write_text(json.dumps({**doc, "base_model": str(base)}))
    server = start_router(portfolio=str(path))
    with channel_to(server) as channel:
        from palm.router.v1 import router_pb2_grpc as pb_grpc

        reply = pb_grpc.RouterStub(channel).Route(pb.RouteRequest(weights=[1, 0, 0]))
    assert reply.member_id in {m["id"] for m in doc["members"]}
