"""Operations: bearer token, TLS, metrics, graceful shutdown."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from palm.client import RouterClient
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc

from .conftest import WAIT_S, Gate, channel_to, wait_until

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def secure(start_router, tls_files, tmp_path_factory):
    """A router with TLS, a bearer token from a file and metrics on a free port."""
    key, cert = tls_files
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")
    server = start_router(
        tls_cert=str(cert), tls_key=str(key), token_file=str(token_file), metrics_port=0
    )
    return server, cert


def _secure_channel(server, cert) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    return grpc.secure_channel(f"localhost:{server.port}", credentials)


@pytest.mark.parametrize(
    "metadata",
    [pytest.param((), id="missing"), pytest.param((("authorization", "Bearer x"),))],
)
def test_auth_without_token_is_unauthenticated(secure, metadata):
    server, cert = secure
    with _secure_channel(server, cert) as channel:
        stub = pb_grpc.RouterStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Route(pb.RouteRequest(weights=[1, 1, 1]), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert TOKEN not in info.value.details()


def test_auth_with_token_over_tls_answers(secure):
    server, cert = secure
    with RouterClient(f"localhost:{server.port}", token=TOKEN, tls_root=cert) as c:
        assert c.route([0.2, 0.5, 0.3])["portfolio_version"] == 1
        assert c.generate("thanks", member_id="p0001")["tokens"] > 0
        assert "".join(c.stream("thanks", member_id="p0001"))


def test_auth_health_needs_no_token(secure):
    server, cert = secure
    with _secure_channel(server, cert) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest()
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_count_requests_batches_and_members(secure):
    server, cert = secure
    with RouterClient(f"localhost:{server.port}", token=TOKEN, tls_root=cert) as c:
        c.generate("thanks", member_id="p0002")
    url = f"http://127.0.0.1:{server.metrics.port}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        text = response.read().decode()
    assert 'palm_router_requests_total{code="OK",rpc="Generate"}' in text
    assert 'palm_router_member_requests_total{member="p0002"}' in text
    assert "palm_router_batch_size_count" in text
    assert "palm_router_portfolio_version 1.0" in text


def test_shutdown_not_serving_then_in_flight_finishes(start_router):
    gate = Gate()
    server = start_router(max_batch_size=2, max_wait_ms=0.0, step_hook=gate)
    gate.close()
    request = pb.GenerateRequest(
        prompt="thanks", member_id="p0000", sampling=pb.SamplingParams(max_new_tokens=5)
    )
    with channel_to(server) as channel, ThreadPoolExecutor(2) as pool:
        stub = pb_grpc.RouterStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = pool.submit(stub.Generate, request, timeout=WAIT_S)
        assert gate.entered.wait(WAIT_S)
        stopping = pool.submit(server.stop, 30.0)

        def not_serving() -> bool:
            status = health.Check(health_pb2.HealthCheckRequest()).status
            return status == health_pb2.HealthCheckResponse.NOT_SERVING

        wait_until(not_serving, "health to say NOT_SERVING")
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(request, timeout=WAIT_S)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        gate.open()
        reply = in_flight.result(WAIT_S)
        stopping.result(WAIT_S)
    assert reply.tokens == 5 and reply.finish_reason == "length"
    assert server.wait(0)
