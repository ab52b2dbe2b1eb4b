"""Train and evaluate tasks through a real broker and real worker processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from palm import builds
from palm.spec import load_spec
from palm.store import Store
from services.worker import EVALUATE, TRAIN, WorkerConfig, make_app

MICRO = Path(__file__).resolve().parents[1] / "data" / "micro.toml"

pytestmark = pytest.mark.slow


def _files(folder: str) -> dict[str, int]:
    return {
        name: os.stat(os.path.join(folder, name)).st_mtime_ns
        for name in sorted(os.listdir(folder))
    }


def test_worker_train_then_evaluate_leaves_adapter_and_reward_vector(
    workers, redis_url, support_model
):
    store = Store(workers.store)
    build = builds.prepare(load_spec(MICRO), store)
    workers.start("train")
    workers.start("evaluate")
    app = make_app(WorkerConfig(broker_url=redis_url, store_url=workers.store))

    trained = app.send_task(TRAIN, args=[build, "p000"]).get(timeout=300)
    adapter = builds.adapter_path(build, "p000")
    assert trained["trained"] is True
    assert store.has_dir(adapter)
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "train_log.json",
    } <= set(os.listdir(store.path(adapter)))
    before = _files(store.path(adapter))

    # The same task again finds the adapter: nothing is trained or rewritten.
    again = app.send_task(TRAIN, args=[build, "p000"]).get(timeout=300)
    assert again["trained"] is False
    assert _files(store.path(adapter)) == before
    assert store.list(f"builds/{build}/policies/p000") == ["adapter"]

    scored = app.send_task(EVALUATE, args=[build, "p000"]).get(timeout=300)
    on_disk = store.read_json(builds.rewards_path(build, "p000"))
    assert scored == on_disk
    assert on_disk["objectives"] == ["brevity", "informativeness"]
    assert on_disk["samples"] == 8 * 2  # prompts × samples_per_prompt in micro.toml
    assert all(0.0 <= r <= 1.0 for r in on_disk["rewards"])
    assert len(on_disk["stderr"]) == 2
    assert "train p000" not in workers.log_text("evaluate")


def test_worker_refuses_a_pickled_message(workers, redis_url, wait_for):
    """Only JSON is accepted on the broker: a pickle is rejected, never loaded."""
    import pickle

    import redis as redis_py
    from kombu import Connection

    workers.start("prune")
    marker = Path(workers.store) / "pwned"
    payload = pickle.dumps(_Exploit(str(marker)))
    with Connection(redis_url) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish(
            payload,
            routing_key="prune",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"id": "pickled-1", "task": "palm.prune"},
        )
    client = redis_py.Redis.from_url(redis_url)
    wait_for(
        lambda: "Refusing to deserialize" in workers.log_text("prune"),
        60,
        "the worker to log its refusal",
    )
    assert client.llen("prune") == 0  # taken off the queue, not left to loop
    assert client.hlen("unacked") == 0
    assert not marker.exists()


class _Exploit:
    """Unpickling this would create a file: the proof that a pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
