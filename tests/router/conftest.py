"""Fixtures of the router tests: a tiny real model, real servers on port 0, Redis.

The model is a two-layer Llama of 64 hidden units with a word-level tokenizer and
five seeded LoRA adapters (services/router/tiny.py), built once per session.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from realparts import RedisServer

from palm.router.v1 import router_pb2_grpc as pb_grpc
from services.router.config import RouterConfig
from services.router.server import RouterServer
from services.router.tiny import build_tiny

WAIT_S = 60.0  # upper bound on any state change a test waits for


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S):
    """Poll `predicate` until it holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Gate:
    """A step hook that can hold the model loop between decoding steps."""

    def __init__(self):
        self._open = threading.Event()
        self._open.set()
        self.entered = threading.Event()  # set when a step waits at the closed gate

    def __call__(self) -> None:
        if not self._open.is_set():
            self.entered.set()
            self._open.wait()

    def close(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    build_tiny(root)
    return root


@pytest.fixture(scope="session")
def portfolio_path(tiny_store) -> Path:
    return tiny_store / "builds" / "tiny-router" / "portfolio.json"


@pytest.fixture(scope="session")
def start_router(portfolio_path) -> Iterator[Callable[..., RouterServer]]:
    """Start a router on 127.0.0.1:0 with config overrides; all stop at the end."""
    started: list[RouterServer] = []

    def start(*, step_hook=None, **overrides) -> RouterServer:
        fields = {
            "portfolio": str(portfolio_path),
            "port": 0,
            "device": "cpu",
            "threads": 1,  # the tiny model is fastest on one thread of a shared CPU
            "reload_interval_s": 0.0,
            "max_new_tokens": 64,
            "default_new_tokens": 8,
            "max_prompt_chars": 400,
            "grace_s": 10.0,
        }
        fields.update(overrides)
        server = RouterServer(RouterConfig(**fields), step_hook=step_hook)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(grace=5.0)


@pytest.fixture(scope="session")
def router(start_router) -> RouterServer:
    """The shared router: batches of up to 8, 5 ms wait."""
    return start_router(max_batch_size=8, max_wait_ms=5.0)


def channel_to(server: RouterServer) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.port}")


@pytest.fixture(scope="session")
def stub(router) -> Iterator[pb_grpc.RouterStub]:
    with channel_to(router) as channel:
        yield pb_grpc.RouterStub(channel)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A private redis-server on a free port, never the default 6379."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed key and certificate for localhost and 127.0.0.1 (openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return key, cert
