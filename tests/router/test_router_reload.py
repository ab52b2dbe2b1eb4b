"""Hot reload: a new version is taken up under load; a broken one is refused."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from palm.portfolio import Portfolio, publish_version
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc
from services.router.tiny import BUILD, portfolio_doc

from .conftest import WAIT_S, channel_to, wait_until

CALLERS = 4


def _write(tiny_store, version: int, doc) -> str:
    folder = tiny_store / "builds" / BUILD / "portfolios"
    folder.mkdir(exist_ok=True)
    path = folder / f"v{version:06d}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _rewards(tiny_store):
    return json.loads((tiny_store / "rewards.json").read_text())


@pytest.fixture(scope="module")
def reloading(start_router, redis_url):
    server = start_router(broker=redis_url, max_batch_size=4, max_wait_ms=2.0)
    assert server.reloader.subscribed.wait(WAIT_S)
    client = redis.Redis.from_url(redis_url)
    yield server, client
    client.close()


def _traffic(stub, stop: threading.Event, done: list, errors: list) -> None:
    weights = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]
    i = 0
    while not stop.is_set():
        request = pb.GenerateRequest(
            prompt="your parcel is late",
            weights=pb.Weights(values=weights[i % len(weights)]),
            sampling=pb.SamplingParams(max_new_tokens=6),
        )
        try:
            done.append(stub.Generate(request, timeout=WAIT_S).portfolio_version)
        except Exception as e:  # collected: the test fails on any
            errors.append(e)
        i += 1


def test_reload_under_load_drops_no_request(reloading, tiny_store):
    server, client = reloading
    # Version 2 drops p0000 and adds p0004, whose adapter is not loaded yet.
    doc = portfolio_doc(tiny_store, 2, [1, 2, 3, 4], _rewards(tiny_store))
    url = _write(tiny_store, 2, doc)
    stop, done, errors = threading.Event(), [], []
    with channel_to(server) as channel, ThreadPoolExecutor(CALLERS) as pool:
        stub = pb_grpc.RouterStub(channel)
        for _ in range(CALLERS):
            pool.submit(_traffic, stub, stop, done, errors)
        wait_until(lambda: len(done) >= 8, "requests on version 1")
        publish_version(client, Portfolio.from_dict(doc), url)
        wait_until(lambda: 2 in done[-CALLERS:], "requests on version 2")
        stop.set()
    assert errors == []
    assert stub_route_version(server) == 2
    assert set(done) == {1, 2}
    wait_until(
        lambda: "v1/p0000" not in server.engine.adapters(), "the old adapter to go"
    )


def stub_route_version(server) -> int:
    with channel_to(server) as channel:
        reply = pb_grpc.RouterStub(channel).Route(pb.RouteRequest(weights=[1, 1, 1]))
        return reply.portfolio_version


BROKEN = [
    pytest.param("{ this is not json", "is not JSON", id="corrupt-json"),
    pytest.param("missing-adapter", "is not in the store", id="missing-adapter"),
    pytest.param("bad-rewards", "rewards has 2 entries", id="bad-rewards"),
]


@pytest.mark.parametrize(("content", "message"), BROKEN)
def test_reload_broken_version_keeps_the_old_serving(
    reloading, tiny_store, content, message
):
    server, client = reloading
    before = server.served().portfolio.version
    version = before + 100
    doc = portfolio_doc(tiny_store, version, [1, 2], _rewards(tiny_store))
    if content == "missing-adapter":
        doc["members"][0]["adapter"] = str(tiny_store / "nowhere" / "adapter")
    elif content == "bad-rewards":
        doc["members"][0]["rewards"] = [0.5, 0.5]
    text = json.dumps(doc) if content in ("missing-adapter", "bad-rewards") else content
    url = _write(tiny_store, version, text)
    failures = server.reloader.failures
    message_json = json.dumps({"build": BUILD, "version": version, "portfolio": url})
    client.publish("palm:portfolios", message_json)
    assert server.reloader.wait_for(lambda r: r.failures > failures, WAIT_S)
    assert message in server.reloader.last_error
    assert stub_route_version(server) == before
    with channel_to(server) as channel:
        reply = pb_grpc.RouterStub(channel).Generate(
            pb.GenerateRequest(prompt="thanks", member_id="p0001")
        )
    assert reply.portfolio_version == before


def test_reload_periodic_check_takes_up_new_file(start_router, tiny_store, tmp_path):
    rewards = _rewards(tiny_store)
    path = tmp_path / "portfolio.json"
    path.write_text(json.dumps(portfolio_doc(tiny_store, 1, [0, 1], rewards)))
    server = start_router(portfolio=str(path), reload_interval_s=0.05)
    # Replaced whole, as the pruner does, so the check never reads half a file.
    fresh = tmp_path / "portfolio.json.tmp"
    fresh.write_text(json.dumps(portfolio_doc(tiny_store, 2, [0, 1, 2], rewards)))
    os.replace(fresh, path)
    assert server.reloader.wait_for(lambda r: r.attempts >= 1, WAIT_S)
    assert server.served().portfolio.version == 2
    # Members whose adapter did not change keep the adapter already loaded.
    assert server.served().adapters == {
        "p0000": "v1/p0000",
        "p0001": "v1/p0001",
        "p0002": "v2/p0002",
    }
