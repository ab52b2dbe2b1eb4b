"""Real parts for integration tests: a private redis-server and real worker processes.

Nothing here touches the machine's own Redis: each session starts its own server on
a free port, with no persistence, and stops it at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from realparts import RedisServer, wait_for

ROOT = Path(__file__).resolve().parents[2]
PALM = [sys.executable, "-m", "palm.cli"]


@pytest.fixture(scope="session", autouse=True)
def model_cache():
    """Builds pretrain into the same cache as the `support_model` fixture; worker
    processes inherit it through the environment."""
    previous = os.environ.get("PALM_CACHE")
    os.environ["PALM_CACHE"] = str(ROOT / ".cache")
    yield
    if previous is None:
        os.environ.pop("PALM_CACHE", None)
    else:
        os.environ["PALM_CACHE"] = previous


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    return wait_for


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # each test starts with an empty broker
    client.close()
    return redis_server.url


class Workers:
    """Real `palm worker KIND` processes, each in its own process group."""

    def __init__(self, broker: str, store: str, logdir: Path):
        self.broker, self.store, self.logdir = broker, store, logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, kind: str, *extra: str) -> subprocess.Popen:
        log = open(self.logdir / f"{kind}.log", "ab")  # noqa: SIM115 - closed in stop
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                *PALM,
                "worker",
                kind,
                "--broker",
                self.broker,
                "--store",
                self.store,
                "--hostname",
                f"{kind}-{len(self.procs)}@test",
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        proc.log = log
        self.procs[f"{kind}-{len(self.procs)}"] = proc
        return proc

    def log_text(self, kind: str) -> str:
        return (self.logdir / f"{kind}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.log.close()
        self.procs.clear()


@pytest.fixture
def workers(redis_url, tmp_path):
    store = tmp_path / "store"
    pool = Workers(redis_url, str(store), tmp_path)
    yield pool
    pool.stop()
