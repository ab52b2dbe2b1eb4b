"""Bad input is INVALID_ARGUMENT with a message naming the field and the rule."""

from __future__ import annotations

import math

import grpc
import pytest

from palm.client import RouterClient
from palm.errors import InputError
from palm.router.v1 import router_pb2 as pb

W = pb.Weights(values=[0.2, 0.5, 0.3])


def _gen(prompt="thanks", weights=W, member_id=None, **sampling):
    target = {"member_id": member_id} if member_id is not None else {"weights": weights}
    return pb.GenerateRequest(
        prompt=prompt, sampling=pb.SamplingParams(**sampling), **target
    )


ROUTE_CASES = [
    pytest.param([0.5, 0.5], "weights has 2 entries", id="too-few"),
    pytest.param([0.2, 0.2, 0.2, 0.4], "weights has 4 entries", id="too-many"),
    pytest.param([], "weights has 0 entries", id="empty"),
    pytest.param([0.5, -0.1, 0.6], "must be >= 0", id="negative"),
    pytest.param([0.5, math.nan, 0.5], "must be finite", id="nan"),
    pytest.param([math.inf, 0.0, 0.0], "must be finite", id="inf"),
    pytest.param([0.0, 0.0, 0.0], "all zero", id="all-zero"),
]


@pytest.mark.parametrize(("weights", "message"), ROUTE_CASES)
def test_route_bad_weights_is_invalid_argument(stub, weights, message):
    with pytest.raises(grpc.RpcError) as info:
        stub.Route(pb.RouteRequest(weights=weights))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    assert "weights" in info.value.details()


GENERATE_CASES = [
    pytest.param(_gen(weights=pb.Weights(values=[1, 2])), "weights has 2", id="w-len"),
    pytest.param(_gen(weights=pb.Weights(values=[0, 0, 0])), "all zero", id="w-zero"),
    pytest.param(_gen(member_id="p9999"), "member_id 'p9999'", id="unknown-member"),
    pytest.param(_gen(member_id="../../etc/passwd"), "member_id", id="path-member"),
    pytest.param(_gen(prompt=""), "prompt is empty", id="empty-prompt"),
    pytest.param(_gen(prompt="   "), "prompt is empty", id="blank-prompt"),
    pytest.param(_gen(prompt="thanks " * 100), "max_prompt_chars", id="long-prompt"),
    pytest.param(_gen(max_new_tokens=65), "sampling.max_new_tokens", id="tokens-cap"),
    pytest.param(_gen(max_new_tokens=-1), "sampling.max_new_tokens", id="tokens-neg"),
    pytest.param(_gen(temperature=-0.5), "sampling.temperature", id="temp-neg"),
    pytest.param(_gen(temperature=9.0), "sampling.temperature", id="temp-high"),
    pytest.param(_gen(temperature=math.nan), "sampling.temperature", id="temp-nan"),
    pytest.param(_gen(top_p=1.5), "sampling.top_p", id="top-p-high"),
    pytest.param(_gen(top_p=-0.1), "sampling.top_p", id="top-p-neg"),
    pytest.param(pb.GenerateRequest(prompt="thanks"), "target is not set", id="none"),
]


@pytest.mark.parametrize(("request_", "message"), GENERATE_CASES)
@pytest.mark.parametrize("rpc", ["Generate", "GenerateStream"])
def test_generate_bad_input_is_invalid_argument(stub, rpc, request_, message):
    with pytest.raises(grpc.RpcError) as info:
        reply = getattr(stub, rpc)(request_)
        if rpc == "GenerateStream":
            list(reply)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_generate_prompt_past_context_is_invalid_argument(start_router):
    server = start_router(max_new_tokens=250, max_prompt_chars=5000)
    with (
        RouterClient(f"127.0.0.1:{server.port}") as client,
        pytest.raises(InputError, match="exceed the model's context of 256"),
    ):
        client.generate("thanks " * 100, member_id="p0000", max_new_tokens=250)


def test_client_raises_input_error_with_router_message(router):
    with RouterClient(f"127.0.0.1:{router.port}") as client:
        with pytest.raises(InputError, match="weights has 2 entries"):
            client.route([0.5, 0.5])
        with pytest.raises(InputError, match="exactly one of weights or member_id"):
            client.generate("thanks")
