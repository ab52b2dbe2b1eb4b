"""Generate and GenerateStream: batching across members gives the unbatched text."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import torch

from palm.client import RouterClient
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc
from palm.store import local_folder
from services.router.engine import load_model

from .conftest import Gate, channel_to, wait_until

PROMPTS = [
    "your parcel is late",
    "please reset the password of my account today thanks",
    "refund",
    "where is the box i paid for with my card last week",
    "thanks",
]
MEMBERS = ["p0000", "p0001", "p0002", "p0003", "p0001"]
NEW_TOKENS = 12


def _greedy(member: str, prompt: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        prompt=prompt,
        member_id=member,
        sampling=pb.SamplingParams(max_new_tokens=NEW_TOKENS),
    )


@pytest.fixture(scope="module")
def reference(tiny_store, portfolio_path):
    """Each prompt generated alone by transformers' own greedy generate."""
    from palm.portfolio import load_portfolio

    portfolio = load_portfolio(str(portfolio_path))
    folders = {m.id: local_folder(m.adapter) for m in portfolio.members}
    model, tokenizer = load_model(local_folder(portfolio.base_model), folders, "cpu")
    texts = []
    for member, prompt in zip(MEMBERS, PROMPTS, strict=True):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            adapter_names=[member],
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return texts


def test_generate_batched_across_members_equals_alone(start_router, reference):
    # The batch starts only when all five requests are in: one batch, by design.
    server = start_router(max_batch_size=len(PROMPTS), max_wait_ms=60_000)
    with channel_to(server) as channel:
        stub = pb_grpc.RouterStub(channel)
        requests = [_greedy(m, p) for m, p in zip(MEMBERS, PROMPTS, strict=True)]
        with ThreadPoolExecutor(len(requests)) as pool:
            replies = list(pool.map(stub.Generate, requests))
    assert server.engine.batch_sizes == [len(PROMPTS)]
    assert [r.text for r in replies] == reference
    assert [r.member_id for r in replies] == MEMBERS
    assert all(r.portfolio_version == 1 for r in replies)


def test_generate_alone_equals_reference(stub, reference):
    for i, (member, prompt) in enumerate(zip(MEMBERS, PROMPTS, strict=True)):
        reply = stub.Generate(_greedy(member, prompt))
        assert reply.text == reference[i]
        assert reply.finish_reason in ("stop", "length")
        assert 0 < reply.tokens <= NEW_TOKENS


def test_generate_stream_chunks_join_to_generate(stub, reference):
    chunks = list(stub.GenerateStream(_greedy(MEMBERS[1], PROMPTS[1])))
    assert "".join(c.text for c in chunks) == reference[1]
    assert chunks[-1].finish_reason in ("stop", "length")
    assert all(c.finish_reason == "" for c in chunks[:-1])
    assert len(chunks) > 2  # streamed step by step, not in one piece


def test_generate_by_weights_uses_routed_member(stub):
    weights = [0.1, 0.1, 0.8]
    routed = stub.Route(pb.RouteRequest(weights=weights))
    reply = stub.Generate(
        pb.GenerateRequest(prompt="thanks", weights=pb.Weights(values=weights))
    )
    assert reply.member_id == routed.member_id
    assert reply.tokens <= 8  # the server's default_new_tokens in these tests


def test_generate_sampling_is_repeatable_with_seed(router):
    with RouterClient(f"127.0.0.1:{router.port}") as client:
        runs = [
            client.generate(
                "your order", member_id="p0002", temperature=1.0, top_p=0.9, seed=7
            )["text"]
            for _ in range(2)
        ]
        chunks = list(
            client.stream(
                "your order", member_id="p0002", temperature=1.0, top_p=0.9, seed=7
            )
        )
    assert runs[0] == runs[1] == "".join(chunks)


def test_generate_queue_full_is_resource_exhausted(start_router):
    gate = Gate()
    server = start_router(
        max_batch_size=1, max_wait_ms=0.0, max_queue=1, step_hook=gate
    )
    gate.close()
    with channel_to(server) as channel, ThreadPoolExecutor(2) as pool:
        stub = pb_grpc.RouterStub(channel)
        running = pool.submit(stub.Generate, _greedy("p0000", "thanks"))
        assert gate.entered.wait(60)  # the first is in the model, held
        waiting = pool.submit(stub.Generate, _greedy("p0001", "thanks"))
        wait_until(lambda: server.engine.queued() == 1, "the second to queue")
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(_greedy("p0002", "thanks"))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_queue is 1" in info.value.details()
        gate.open()
        assert running.result(60).tokens > 0
        assert waiting.result(60).tokens > 0


def test_generate_deadline_stops_the_job(start_router):
    gate = Gate()
    server = start_router(max_batch_size=2, max_wait_ms=0.0, step_hook=gate)
    gate.close()
    with channel_to(server) as channel:
        stub = pb_grpc.RouterStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            # The gate holds the model until the client has given up.
            stub.Generate(_greedy("p0000", "thanks"), timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gate.open()
        wait_until(server.engine.idle, "the expired job to leave the model")
        assert stub.Generate(_greedy("p0000", "thanks")).tokens > 0
