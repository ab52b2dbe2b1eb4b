"""The Celery application shared by the trainer, evaluator and pruner workers.

Messages are JSON and carry ids only (build, policy); each worker opens its own
store. Delivery is at least once: late acknowledgement, requeue when the process
running a task dies, prefetch of one. A task that keeps killing its worker is not
looped forever: every delivery is counted in Redis and past `max_deliveries` the
task is recorded as failed in the store, where `palm build status` sees it and
`palm build resume` can try it again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from celery import Celery

from palm import builds
from palm.errors import InputError, PalmError, PermanentError, RetryableError
from palm.store import Store

log = logging.getLogger(__name__)

TRAIN, EVALUATE, PRUNE = "palm.train", "palm.evaluate", "palm.prune"
QUEUES = {TRAIN: "train", EVALUATE: "evaluate", PRUNE: "prune"}


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """Settings of a worker process and of the client that enqueues its tasks."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL of the broker; also the result backend and the delivery counters."""
    store_url: str = "store"
    """The store every task reads and writes (a local folder or an fsspec URL)."""
    max_deliveries: int = 3
    """Deliveries of one task before it is recorded as failed and not run again."""
    train_time_limit_s: int = 3 * 3600
    """Hard time limit of one training task; the process is killed past it."""
    evaluate_time_limit_s: int = 3600
    """Hard time limit of one evaluation task."""
    prune_time_limit_s: int = 900
    """Hard time limit of one prune task."""
    shutdown_timeout_s: float = 60.0
    """On SIGTERM, how long a running task may go on before it is stopped and put
    back on its queue (late acknowledgement); stop grace periods must be longer."""

    def __post_init__(self):
        for field in (
            "max_deliveries",
            "train_time_limit_s",
            "evaluate_time_limit_s",
            "prune_time_limit_s",
        ):
            if getattr(self, field) < 1:
                raise InputError(f"{field} is {getattr(self, field)}; it must be ≥ 1")

    @property
    def visibility_timeout_s(self) -> int:
        # Longer than the longest task, so Redis never hands a running task to a
        # second worker; only a task whose worker vanished comes back.
        longest = max(
            self.train_time_limit_s, self.evaluate_time_limit_s, self.prune_time_limit_s
        )
        return int(longest * 1.25) + 60


def make_app(config: WorkerConfig) -> Celery:
    app = Celery("palm", broker=config.broker_url, backend=config.broker_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],  # a pickled message is refused, never loaded
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 24 * 3600,
        broker_transport_options={"visibility_timeout": config.visibility_timeout_s},
        result_backend_transport_options={
            "visibility_timeout": config.visibility_timeout_s
        },
        broker_connection_retry_on_startup=True,
        task_routes={name: {"queue": queue} for name, queue in QUEUES.items()},
        task_annotations={
            TRAIN: {"time_limit": config.train_time_limit_s},
            EVALUATE: {"time_limit": config.evaluate_time_limit_s},
            PRUNE: {"time_limit": config.prune_time_limit_s},
        },
        worker_soft_shutdown_timeout=config.shutdown_timeout_s,
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    app.palm_config = config
    _register_tasks(app, config)
    return app


def _register_tasks(app: Celery, config: WorkerConfig) -> None:
    def run(task, stage: str, build: str, policy: str | None, body):
        return _run_counted(app, config, task, stage, build, policy, body)

    @app.task(name=TRAIN, bind=True)
    def train(self, build: str, policy: str) -> dict[str, Any]:
        from palm.training import train_policy

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            meta = {
                "build": build,
                "policy": policy,
                "step": step,
                "of": total,
                "metrics": metrics,
            }
            self.update_state(state="PROGRESS", meta=meta)

        return run(
            self,
            "train",
            build,
            policy,
            lambda store: train_policy(store, build, policy, progress),
        )

    @app.task(name=EVALUATE, bind=True)
    def evaluate(self, build: str, policy: str) -> dict[str, Any]:
        from palm.evaluation import evaluate_policy

        return run(
            self,
            "evaluate",
            build,
            policy,
            lambda store: evaluate_policy(store, build, policy),
        )

    @app.task(name=PRUNE, bind=True)
    def prune(self, build: str, *_header_results) -> dict[str, Any]:
        from palm.pruning import prune_build

        def body(store: Store) -> dict[str, Any]:
            portfolio = prune_build(store, build, publish=_publisher(config))
            return {
                "build": build,
                "version": portfolio["version"],
                "members": [m["id"] for m in portfolio["members"]],
            }

        return run(self, "prune", build, None, body)


def _run_counted(app, config, task, stage, build, policy, body):
    """Run a task body once more, unless it has been delivered too often."""
    key = f"palm:deliveries:{task.request.id}"
    redis = app.backend.client
    deliveries = int(redis.incr(key))
    redis.expire(key, 7 * 24 * 3600)
    what = f"{build}/{policy}" if policy else build
    log.info(
        "%s %s: received (delivery %d of at most %d)",
        stage,
        what,
        deliveries,
        config.max_deliveries,
    )
    store = Store(config.store_url)
    if deliveries > config.max_deliveries:
        reason = (
            f"delivered {deliveries} times, more than max_deliveries="
            f"{config.max_deliveries}: each delivery killed its worker"
        )
        _record_failure(store, build, policy or "prune", stage, reason)
        raise PermanentError(f"{stage} {what}: {reason}")
    started = time.monotonic()
    try:
        result = body(store)
    except RetryableError as e:
        log.warning("%s %s: failed, will retry: %s", stage, what, e)
        raise task.retry(exc=e, countdown=5, max_retries=config.max_deliveries) from e
    except PalmError as e:
        log.error("%s %s: failed: %s", stage, what, e)
        _record_failure(store, build, policy or "prune", stage, str(e))
        raise PermanentError(f"{stage} {what}: {e}") from None
    log.info("%s %s: succeeded in %.1fs", stage, what, time.monotonic() - started)
    if policy:
        store.delete(builds.failure_path(build, policy))
    return result


def _record_failure(store: Store, build: str, policy: str, stage: str, reason: str):
    record = {
        "policy": policy,
        "stage": stage,
        "reason": reason,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_json(builds.failure_path(build, policy), record)


def _publisher(config: WorkerConfig):
    def publish(portfolio: dict[str, Any], url: str) -> None:
        import redis

        from palm.portfolio import Portfolio, publish_version

        client = redis.Redis.from_url(config.broker_url)
        try:
            receivers = publish_version(client, Portfolio.from_dict(portfolio), url)
        finally:
            client.close()
        log.info(
            "prune %s: published version %d to %d listeners",
            portfolio["build"],
            portfolio["version"],
            receivers,
        )

    return publish
