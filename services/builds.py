"""Builds on the broker: enqueue the canvas, resume what the store lacks, report state.

The canvas of a build is a chord: for every policy, train then evaluate; beside
them, evaluate the base model; when all are done, prune. The store says what is
done; the broker says what is queued or running. Nothing is kept in memory.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from celery import chain, chord, group
from celery.result import AsyncResult

from palm import builds
from palm.errors import InputError
from palm.store import Store
from services.worker import EVALUATE, PRUNE, QUEUES, TRAIN, make_app

log = logging.getLogger(__name__)

RUNNING = {"STARTED", "PROGRESS"}


def _tasks_key(build: str) -> str:
    return f"palm:build:{build}:tasks"


def submit(config, spec) -> dict[str, Any]:
    """Write a new build to the store and enqueue all of it."""
    if spec.training.time_limit_s > config.train_time_limit_s:
        raise InputError(
            f"training.time_limit_s is {spec.training.time_limit_s:g}; the workers "
            f"allow at most {config.train_time_limit_s} s per training task (their "
            "broker visibility timeout is sized from it): lower it in the spec"
        )
    store = Store(config.store_url)
    build = builds.prepare(spec, store)
    return {"build": build, **enqueue_missing(config, build)}


def enqueue_missing(config, build: str) -> dict[str, Any]:
    """Enqueue only what the store lacks; a finished build gets nothing new."""
    app = make_app(config)
    store = Store(config.store_url)
    done = builds.progress(store, build)
    for policy in done["failed"]:  # a resumed build tries its failures again
        store.delete(builds.failure_path(build, policy))
    trained, evaluated = set(done["trained"]), set(done["evaluated"])
    ids: dict[str, str] = {}
    # The spec's own limit for a training task, within the workers' cap.
    train_limit = min(
        builds.load_spec(store, build).training.time_limit_s, config.train_time_limit_s
    )

    def task(name: str, *args: str):
        # Ids are chosen here so status can find every task on the broker.
        task_id = uuid.uuid4().hex
        ids[f"{name.split('.')[-1]}:{args[-1]}"] = task_id
        limits = {"time_limit": train_limit} if name == TRAIN else {}
        return app.signature(
            name, args=list(args), immutable=True, task_id=task_id, **limits
        )

    header = []
    for policy in done["policies"]:
        steps = []
        if policy not in trained:
            steps.append(task(TRAIN, build, policy))
        if policy not in evaluated:
            steps.append(task(EVALUATE, build, policy))
        if steps:
            header.append(chain(*steps) if len(steps) > 1 else steps[0])
    if not done["base_evaluated"]:
        header.append(task(EVALUATE, build, builds.BASE))
    counts = {
        "train": sum(k.startswith("train:") for k in ids),
        "evaluate": sum(k.startswith("evaluate:") for k in ids),
        "prune": int(bool(header) or not done["portfolio"]),
    }
    if counts["prune"]:
        prune = task(PRUNE, build)
        _remember(app, build, ids)
        (chord(group(header), prune) if header else prune).apply_async()
    log.info(
        "build %s: enqueued train=%d evaluate=%d prune=%d",
        build,
        counts["train"],
        counts["evaluate"],
        counts["prune"],
    )
    return {"enqueued": counts}


def _remember(app, build: str, ids: dict[str, str]) -> None:
    """Keep each task's id on the broker, keyed by stage and policy, for status."""
    client = app.backend.client
    client.delete(_tasks_key(build))
    client.hset(_tasks_key(build), mapping=ids)
    client.expire(_tasks_key(build), 30 * 24 * 3600)


def _on_broker(app) -> set[str]:
    """Ids of the tasks waiting in a queue or delivered and not yet acknowledged."""
    client = app.backend.client
    found: set[str] = set()
    queued = [json.loads(m) for q in QUEUES.values() for m in client.lrange(q, 0, -1)]
    # kombu keeps a delivered, unacknowledged message as [message, exchange, key].
    unacked = [json.loads(v)[0] for v in client.hvals("unacked")]
    for message in queued + unacked:
        task_id = (message.get("headers") or {}).get("id")
        if task_id:
            found.add(task_id)
    return found


def status(config, build: str) -> dict[str, Any]:
    """Stages with counts done/running/failed and each running task's latest step."""
    app = make_app(config)
    store = Store(config.store_url)
    done = builds.progress(store, build)
    ids = {
        k.decode(): v.decode()
        for k, v in app.backend.client.hgetall(_tasks_key(build)).items()
    }
    # A task is live while its message is queued or unacknowledged (acks are late).
    on_broker = _on_broker(app)
    live: dict[str, list[dict[str, Any]]] = {"train": [], "evaluate": [], "prune": []}
    waiting = 0
    for key, task_id in ids.items():
        if task_id not in on_broker:
            continue
        stage, policy = key.split(":", 1)
        result = AsyncResult(task_id, app=app)
        if result.state not in RUNNING:
            waiting += 1
            continue
        info = result.info if isinstance(result.info, dict) else {}
        latest = {k: info[k] for k in ("step", "of") if k in info}
        live[stage].append({"policy": policy, "state": result.state, **latest})
    n = len(done["policies"])
    stages = {
        "train": {"done": len(done["trained"]), "of": n, "running": live["train"]},
        "evaluate": {
            "done": len(done["evaluated"]),
            "of": n,
            "running": live["evaluate"],
            "base": done["base_evaluated"],
        },
        "prune": {"done": int(done["portfolio"]), "of": 1, "running": live["prune"]},
    }
    busy = bool(waiting) or any(live.values())
    if done["portfolio"] and len(done["evaluated"]) == n and not done["failed"]:
        state = "done"
    elif busy:
        state = "running"
    else:
        # Nothing queued or running and not done: failed tasks, or a lost callback.
        state = "failed" if done["failed"] else "stalled"
    failures = [store.read_json(builds.failure_path(build, p)) for p in done["failed"]]
    return {
        "build": build,
        "state": state,
        "stages": stages,
        "failed": failures,
        "waiting": waiting,
    }
