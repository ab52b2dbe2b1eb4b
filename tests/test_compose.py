"""docker-compose.yml and the Dockerfile agree with the code they start.

Nothing is run: the compose file is read as YAML and every `palm` command in it is
parsed by the CLI's own argparse parser, so a renamed flag or subcommand fails here
rather than in a container that restarts forever.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from palm.cli import build_parser
from services.worker import QUEUES, WorkerConfig

ROOT = Path(__file__).resolve().parents[1]
WORKERS = {"trainer": "train", "evaluator": "evaluate", "pruner": "prune"}
# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`: compose fills these in at `up`.
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


@pytest.fixture(scope="module")
def compose() -> dict:
    # safe_load resolves the `<<: *palm` merge keys, as compose does.
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def palm_services(services: dict) -> dict:
    """Services run from this repository's image, whose entrypoint is `palm`."""
    return {
        name: s
        for name, s in services.items()
        if s.get("build") == "." or str(s.get("image", "")).startswith("palm:")
    }


def parse_palm(argv: list[str], where: str):
    """The CLI's parse of `palm ARGV`; a command argparse rejects fails the test."""
    argv = [_INTERPOLATION.sub(lambda m: f"dummy-{m.group(1)}", a) for a in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code == 0:  # --help, which the tools service runs by default
            return None
        pytest.fail(f"{where}: `palm {shlex.join(argv)}` is not a palm command")
    assert callable(getattr(args, "func", None)), f"{where}: {argv} is incomplete"
    return args


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    assert test[0] == "CMD", f"healthcheck test {test!r} starts with neither CMD form"
    return list(test[1:])


def seconds(duration: str) -> float:
    """A compose duration ('90s', '1m30s') in seconds."""
    parts = _DURATION_PART.findall(duration)
    assert "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def test_compose_redis_is_health_checked_and_never_evicts(services):
    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    # Evicting keys would silently drop queued tasks and delivery counters.
    policy = command.index("--maxmemory-policy")
    assert command[policy + 1] == "noeviction"
    assert healthcheck_argv(redis)[:2] == ["redis-cli", "ping"]
    for name, service in palm_services(services).items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


@pytest.mark.parametrize("name,kind", sorted(WORKERS.items()))
def test_compose_worker_consumes_its_own_queue(services, name, kind):
    args = parse_palm(services[name]["command"], name)
    assert (args.command, args.kind) == ("worker", kind)
    assert QUEUES[f"palm.{kind}"] == kind


def test_compose_trainer_reserves_a_gpu(services):
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices), devices


def test_compose_router_serves_and_is_health_checked(services):
    router = services["router"]
    args = parse_palm(router["command"], "router")
    assert (args.command, args.router_command) == ("router", "serve")
    argv = healthcheck_argv(router)
    assert argv[0] == "palm"
    health = parse_palm(argv[1:], "router healthcheck")
    # The standard grpc.health.v1 service, on the port the router serves.
    assert health.router_command == "health"
    assert health.target.rsplit(":", 1)[1] == str(args.port)


def test_compose_every_palm_command_parses(services):
    for name, service in services.items():
        if name in palm_services(services) and "command" in service:
            parse_palm(service["command"], name)
        if "healthcheck" in service:
            argv = healthcheck_argv(service)
            if argv[0] == "palm":
                parse_palm(argv[1:], f"{name} healthcheck")


def test_compose_every_palm_service_shares_the_store(compose, services):
    assert "store" in compose["volumes"]
    for name, service in palm_services(services).items():
        mounts = dict(v.split(":")[:2] for v in service["volumes"])
        assert "store" in mounts, f"{name} does not mount the store volume"
        assert service["environment"]["PALM_STORE_URL"] == mounts["store"], name
        broker = urlparse(service["environment"]["PALM_BROKER_URL"])
        assert broker.hostname in services, f"{name}: broker host is no service"


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_compose_worker_grace_outlasts_soft_shutdown(services, name):
    # Past the grace period docker kills the worker; a task must be put back on
    # its queue by the soft shutdown before that, not cut off halfway.
    grace = seconds(services[name]["stop_grace_period"])
    assert grace > WorkerConfig().shutdown_timeout_s


def test_compose_router_grace_outlasts_its_drain(services):
    router = services["router"]
    drain = parse_palm(router["command"], "router").grace
    assert seconds(router["stop_grace_period"]) > drain


def test_dockerfile_entrypoint_is_palm():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    entrypoints = [line for line in lines if line.startswith("ENTRYPOINT")]
    assert len(entrypoints) == 1, entrypoints
    assert json.loads(entrypoints[0].removeprefix("ENTRYPOINT")) == ["palm"]
