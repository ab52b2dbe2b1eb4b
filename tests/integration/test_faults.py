"""Faults survived: a worker killed mid-task, Redis restarted, a poison task.

Each test runs a whole five-policy build (tests/data/faults.toml) through real
workers and a private Redis and injects faults for real: SIGKILL of the prefork
child running a training task, the broker stopped and started again while a task
runs (both in one build: a build costs minutes on two cores), and a task that kills
its worker on every delivery. Each checks that the build ends with one result per
policy in the store, nothing partial and nothing twice. The reward
`tests.integration.faulty:brevity` takes the cues (see that module).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from palm import builds
from palm.store import Store
from services.builds import status
from services.worker import WorkerConfig

from .conftest import PALM, ROOT
from .faulty import FAULTS_ENV

SPEC = ROOT / "tests" / "data" / "faults.toml"  # five policies, two steps each
BUILD_S = 600  # upper bound on one build on two busy cores

pytestmark = pytest.mark.slow


@pytest.fixture
def faults(tmp_path, monkeypatch) -> Path:
    """The cue folder, seen by every worker started after this fixture."""
    folder = tmp_path / "faults"
    folder.mkdir()
    monkeypatch.setenv(FAULTS_ENV, str(folder))
    return folder


def palm_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [*PALM, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def submit(workers) -> str:
    out = palm_cli("build", "submit", str(SPEC), "--json", *_broker_store(workers))
    return json.loads(out.stdout)["build"]


def _broker_store(workers) -> list[str]:
    return ["--broker", workers.broker, "--store", workers.store]


def state_of(workers, build: str) -> str:
    config = WorkerConfig(broker_url=workers.broker, store_url=workers.store)
    return status(config, build)["state"]


def children(pid: int) -> set[int]:
    """Ids of the processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        # The command name may hold spaces: fields after its ')' are fixed.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def check_store(store: Store, build: str) -> dict[str, int]:
    """One published adapter per policy, nothing partial, staged or doubled."""
    policies = [p["id"] for p in builds.load_policies(store, build)]
    for policy in policies:
        folder = store.path(f"builds/{build}/policies/{policy}")
        assert os.listdir(folder) == ["adapter"], (policy, os.listdir(folder))
        assert store.has_dir(builds.adapter_path(build, policy))
    rewards = store.list(f"builds/{build}/rewards")
    assert rewards == sorted(f"{p}.json" for p in [builds.BASE, *policies])
    assert sorted(os.listdir(store.path(f"builds/{build}/rewards"))) == rewards
    versions = store.list(f"builds/{build}/portfolios")
    assert versions == ["v000001.json"]  # a prune run twice writes no second one
    assert store.list(f"builds/{build}/failures") == []
    return {"policies": len(policies), "rewards": len(rewards)}


def deliveries(client: redis.Redis) -> dict[str, int]:
    return {
        key.decode().rsplit(":", 1)[1]: int(client.get(key))
        for key in client.scan_iter("palm:deliveries:*")
    }


def hold(faults: Path, wait_for) -> tuple[int, str, str]:
    """Cue the next training task to stop in its reward; (pid, task id, policy)."""
    (faults / "hold").touch()

    def held() -> tuple[int, str, str] | None:
        for path in faults.glob("held-*"):
            if path.read_text():
                task_id, policy = path.read_text().split()
                path.rename(faults / f"seen-{path.name}")  # the next hold finds no old
                return int(path.name.split("-")[1]), task_id, policy
        return None

    return wait_for(held, BUILD_S, "a training task to stop in its reward")


def test_build_survives_a_killed_worker_and_a_redis_restart(
    workers, redis_server, redis_url, support_model, faults, wait_for
):
    """Two faults in one build (each build costs minutes on two cores)."""
    from celery.result import AsyncResult

    from services.worker import make_app

    trainer = workers.start("train")
    workers.start("evaluate")
    workers.start("prune")
    app = make_app(WorkerConfig(broker_url=redis_url, store_url=workers.store))
    build = submit(workers)

    # Fault 1: SIGKILL the prefork child in the middle of a training task.
    pid, killed_task, killed_policy = hold(faults, wait_for)
    assert pid in children(trainer.pid)  # the child running it, not the worker
    assert AsyncResult(killed_task, app=app).state == "STARTED"
    os.kill(pid, signal.SIGKILL)

    # Fault 2: stop Redis while another training task runs, start it again, and
    # only then let the task finish.
    pid, outage_task, outage_policy = hold(faults, wait_for)
    assert outage_task != killed_task
    lost = workers.log_text("train").count("Connection to broker lost")
    redis_server.stop()
    wait_for(
        lambda: workers.log_text("train").count("Connection to broker lost") > lost,
        120,
        "the train worker to notice the broker is gone",
    )
    redis_server.start()
    (faults / f"release-{pid}").touch()

    def settled() -> str | None:
        state = state_of(workers, build)
        return state if state in ("done", "stalled", "failed") else None

    state = wait_for(settled, BUILD_S, "the build to settle", interval=0.5)
    resumed = None
    if state != "done":  # a chord callback lost with the broker's connection
        out = palm_cli("build", "resume", build, "--json", *_broker_store(workers))
        resumed = json.loads(out.stdout)["enqueued"]
        wait_for(
            lambda: state_of(workers, build) == "done",
            BUILD_S,
            "the resumed build",
            interval=0.5,
        )

    store = Store(workers.store)
    assert check_store(store, build) == {"policies": 5, "rewards": 6}
    counts = deliveries(redis.Redis.from_url(redis_url))
    assert counts[killed_task] == 2  # killed once, delivered again, finished
    assert AsyncResult(killed_task, app=app).state == "SUCCESS"
    assert "WorkerLostError" in workers.log_text("train")
    for policy in (killed_policy, outage_policy):
        path = f"builds/{build}/policies/{policy}/adapter/train_log.json"
        assert len(store.read_json(path)["steps"]) == 2  # trained whole, once
    print(
        f"\nkill + redis restart: {len(counts)} tasks, deliveries "
        f"{sorted(counts.values())}, killed task {counts[killed_task]}, outage "
        f"task {counts[outage_task]}, settled {state}, resumed {resumed}"
    )


def test_poison_task_is_failed_after_its_deliveries_and_resumed(
    workers, redis_url, support_model, faults, wait_for
):
    (faults / "poison").write_text("p001")
    workers.start("train", "--max-deliveries", "2")
    workers.start("evaluate")
    workers.start("prune")
    build = submit(workers)

    wait_for(
        lambda: state_of(workers, build) == "failed",
        BUILD_S,
        "the build to fail",
        interval=0.5,
    )
    out = palm_cli(
        "build", "status", build, "--json", *_broker_store(workers), check=False
    )
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["state"] == "failed"
    assert [f["policy"] for f in report["failed"]] == ["p001"]
    assert report["failed"][0]["stage"] == "train"
    assert (
        "delivered 3 times, more than max_deliveries=2" in report["failed"][0]["reason"]
    )
    assert len(list(faults.glob("poisoned-*"))) == 2  # killed twice, then refused
    # Every other task finished: four adapters and reward vectors, and the base's.
    assert report["stages"]["train"]["done"] == 4
    assert report["stages"]["evaluate"]["done"] == 4
    assert report["stages"]["evaluate"]["base"] is True
    human = palm_cli("build", "status", build, *_broker_store(workers), check=False)
    assert "failed    p001 (train)" in human.stdout

    # The cause is removed; resume tries only what the store lacks.
    (faults / "poison").unlink()
    out = palm_cli("build", "resume", build, "--json", *_broker_store(workers))
    assert json.loads(out.stdout)["enqueued"] == {"train": 1, "evaluate": 1, "prune": 1}
    wait_for(
        lambda: state_of(workers, build) == "done", BUILD_S, "the build", interval=0.5
    )
    assert check_store(Store(workers.store), build) == {"policies": 5, "rewards": 6}
    client = redis.Redis.from_url(redis_url)
    print(f"\npoison: deliveries {sorted(deliveries(client).values())}")
