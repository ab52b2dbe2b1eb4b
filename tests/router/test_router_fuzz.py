"""Fuzzing every RPC: malformed and extreme requests get a clear refusal, never a crash.

Hypothesis sends weights, prompts, member ids and sampling parameters of every kind
(empty, huge, unicode, NaN, infinite, negative, of the wrong length) and raw bytes
that are not a valid message. Each call must end OK or INVALID_ARGUMENT with a
message, OK exactly when the input was valid, and the server must answer a good
request afterwards. Example counts are kept small: the whole file takes seconds.
"""

from __future__ import annotations

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc

from .conftest import WAIT_S, channel_to

OBJECTIVES = 3  # of the tiny portfolio
MEMBERS = ("p0000", "p0001", "p0002", "p0003")
CAP = 64  # max_new_tokens of the test router (tests/router/conftest.py)
MAX_PROMPT = 400  # its max_prompt_chars

FUZZ = settings(
    max_examples=60,
    deadline=None,  # a shared CPU makes single calls slow now and then
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, -1e308, math.nan, math.inf]),
)
weights = st.one_of(
    st.lists(floats, max_size=6),
    st.lists(st.floats(0, 1), min_size=OBJECTIVES, max_size=OBJECTIVES),
    st.integers(0, 200_000).map(lambda n: [0.5] * n),  # huge
)
# Valid UTF-8 only: a lone surrogate cannot even be put into a message.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
prompts = st.one_of(
    text,
    st.sampled_from(["thanks", "your parcel is late", " ", "\x00", "🙂" * 50]),
    st.integers(0, 1_000_000).map(lambda n: "a" * n),  # up to a megabyte
)
member_ids = st.one_of(
    st.sampled_from(MEMBERS), text, st.integers(0, 100_000).map(lambda n: "p" * n)
)
float32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
sampling = st.builds(
    pb.SamplingParams,
    max_new_tokens=st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(0, 12)),
    temperature=st.one_of(float32, st.floats(0, 2, width=32)),
    top_p=st.one_of(float32, st.floats(0, 1, width=32)),
    seed=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)


@st.composite
def generate_requests(draw) -> pb.GenerateRequest:
    target = draw(st.sampled_from(["weights", "member_id", "none"]))
    request = pb.GenerateRequest(prompt=draw(prompts), sampling=draw(sampling))
    if target == "weights":
        request.weights.values.extend(draw(weights))
    elif target == "member_id":
        request.member_id = draw(member_ids)
    return request


def valid_weights(values) -> bool:
    return (
        len(values) == OBJECTIVES
        and all(math.isfinite(w) and w >= 0 for w in values)
        and sum(values) > 0
    )


def valid_generate(request: pb.GenerateRequest) -> bool:
    target = request.WhichOneof("target")
    s = request.sampling
    top_p = s.top_p or 1.0
    return (
        bool(request.prompt.strip())
        and len(request.prompt) <= MAX_PROMPT
        and (
            (target == "weights" and valid_weights(request.weights.values))
            or (target == "member_id" and request.member_id in MEMBERS)
        )
        and 0 <= s.max_new_tokens <= CAP
        and math.isfinite(s.temperature)
        and 0 <= s.temperature <= 2
        and math.isfinite(top_p)
        and 0 < top_p <= 1
    )


def code_of(call) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def assert_refused_or_answered(code, details, valid: bool) -> None:
    if valid:
        assert code == grpc.StatusCode.OK, details
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert details and "\n" not in details  # one clear line


@pytest.fixture(scope="module", autouse=True)
def still_serving(router):
    """After all the fuzzing, the server still answers good requests."""
    yield
    with channel_to(router) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=WAIT_S
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reply = pb_grpc.RouterStub(channel).Generate(
            pb.GenerateRequest(prompt="thanks", member_id="p0001"), timeout=WAIT_S
        )
        assert reply.tokens > 0


@FUZZ
@given(values=weights)
@example(values=[1e308, 1e308, 1e308])  # their sum overflows
@example(values=[5e-324, 0.0, 0.0])  # the smallest positive weight
def test_fuzz_route_refuses_bad_weights_and_answers_good(stub, values):
    request = pb.RouteRequest(weights=values)
    code, details = code_of(lambda: stub.Route(request, timeout=WAIT_S))
    assert_refused_or_answered(code, details, valid_weights(values))


@FUZZ
@given(request=generate_requests())
def test_fuzz_generate_refuses_bad_requests_and_answers_good(stub, request):
    code, details = code_of(lambda: stub.Generate(request, timeout=WAIT_S))
    assert_refused_or_answered(code, details, valid_generate(request))


@FUZZ
@given(request=generate_requests())
def test_fuzz_generate_stream_refuses_bad_requests_and_answers_good(stub, request):
    code, details = code_of(lambda: list(stub.GenerateStream(request, timeout=WAIT_S)))
    assert_refused_or_answered(code, details, valid_generate(request))


RPCS = {
    "Route": (pb.RouteRequest, False),
    "Generate": (pb.GenerateRequest, False),
    "GenerateStream": (pb.GenerateRequest, True),
    "GetPortfolio": (pb.GetPortfolioRequest, False),
}


@FUZZ
@given(rpc=st.sampled_from(sorted(RPCS)), raw=st.binary(max_size=300))
@example(rpc="Generate", raw=b"\x00")  # once INTERNAL: grpcio's own refusal
@example(rpc="Generate", raw=b"\x0a\x01\xff")  # a prompt that is not UTF-8
def test_fuzz_raw_bytes_are_refused_or_read_as_a_message(router, rpc, raw):
    """Bytes that are not a message are INVALID_ARGUMENT; bytes that happen to be
    one are handled like that message."""
    kind, streaming = RPCS[rpc]
    method = f"/palm.router.v1.Router/{rpc}"
    with channel_to(router) as channel:
        if streaming:
            call = channel.unary_stream(method)
            code, details = code_of(lambda: list(call(raw, timeout=WAIT_S)))
        else:
            call = channel.unary_unary(method)
            code, details = code_of(lambda: call(raw, timeout=WAIT_S))
    try:
        request = kind.FromString(raw)
    except Exception:  # protobuf's DecodeError: not a message at all
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "not a valid" in details
        return
    if rpc == "Route":
        valid = valid_weights(request.weights)
    elif rpc == "GetPortfolio":
        valid = True
    else:
        valid = valid_generate(request)
    assert_refused_or_answered(code, details, valid)


def test_fuzz_message_over_the_size_limit_is_refused(stub):
    """Past gRPC's 4 MiB receive limit the transport refuses it; the server lives."""
    request = pb.GenerateRequest(prompt="a" * (5 << 20), member_id="p0000")
    code, _ = code_of(lambda: stub.Generate(request, timeout=WAIT_S))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Route(pb.RouteRequest(weights=[1, 1, 1]), timeout=WAIT_S).member_id
