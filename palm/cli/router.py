"""`palm router serve`; `palm route` and `palm generate` for a person at a terminal."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Iterator

from palm.cli._common import add_json_flag, print_json
from palm.errors import InputError, PalmError

DEFAULT_TARGET = "127.0.0.1:50051"


def register(sub: argparse._SubParsersAction) -> None:
    _register_serve(sub)
    _register_route(sub)
    _register_generate(sub)


def _register_serve(sub) -> None:
    router = sub.add_parser("router", help="run the gRPC router")
    router_sub = router.add_subparsers(dest="router_command", required=True)
    p = router_sub.add_parser(
        "serve",
        help="serve a portfolio: route weights to members and generate with them",
        description="Load the base model once and every member of the portfolio as "
        "a LoRA adapter, then serve palm.router.v1.Router until SIGTERM.",
    )
    p.add_argument("--portfolio", required=True, help="path or URL of portfolio.json")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free)")
    p.add_argument(
        "--broker",
        default=os.environ.get("PALM_BROKER_URL"),
        help="Redis URL announcing new portfolio versions "
        "(default: $PALM_BROKER_URL; none: only the periodic check)",
    )
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=256)
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap per request")
    p.add_argument("--default-new-tokens", type=int, default=64)
    p.add_argument("--max-prompt-chars", type=int, default=8192)
    p.add_argument(
        "--reload-interval", type=float, default=30.0, help="seconds; 0 turns it off"
    )
    p.add_argument("--tls-cert", help="PEM certificate chain (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--token-file", help="file with the bearer token clients send")
    p.add_argument(
        "--token-env",
        default="PALM_ROUTER_TOKEN",
        help="variable holding the token when no --token-file (default: %(default)s)",
    )
    p.add_argument("--metrics-port", type=int, help="Prometheus HTTP port")
    p.add_argument("--grace", type=float, default=30.0, help="drain seconds on SIGTERM")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads; 0: torch's default, 1 suits small models",
    )
    p.set_defaults(func=_serve)

    h = router_sub.add_parser(
        "health",
        help="ask a router's standard health service; exit 0 when SERVING",
        description="Calls grpc.health.v1.Health/Check; for container health checks.",
    )
    h.add_argument("--target", default=DEFAULT_TARGET, help="router HOST:PORT")
    h.add_argument("--tls-root", help="PEM root certificate: connect with TLS")
    h.add_argument("--timeout", type=float, default=3.0, help="seconds")
    h.set_defaults(func=_health)


def _serve(args: argparse.Namespace) -> int:
    from services.router.config import RouterConfig
    from services.router.server import serve

    config = RouterConfig(
        portfolio=args.portfolio,
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_new_tokens=args.max_new_tokens,
        default_new_tokens=args.default_new_tokens,
        max_prompt_chars=args.max_prompt_chars,
        reload_interval_s=args.reload_interval,
        broker=args.broker,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        token_file=args.token_file,
        token_env=args.token_env,
        metrics_port=args.metrics_port,
        grace_s=args.grace,
        device=args.device,
        threads=args.threads,
    )
    return serve(config)


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.tls_root:
        with open(args.tls_root, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.target, creds)
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"{args.target}: {e.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        default=os.environ.get("PALM_ROUTER", DEFAULT_TARGET),
        help="router HOST:PORT (default: $PALM_ROUTER or %(default)s)",
    )
    p.add_argument("--tls-root", help="PEM root certificate: connect with TLS")
    p.add_argument(
        "--token-env",
        default="PALM_ROUTER_TOKEN",
        help="variable holding the bearer token (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    add_json_flag(p)


def _register_route(sub) -> None:
    p = sub.add_parser(
        "route",
        help="ask a router which member serves a weight vector",
        description="Print the member that serves the weights, its reward vector, "
        "its value and the portfolio's certified gaps.",
    )
    _add_connection(p)
    p.add_argument(
        "--weights", required=True, help="one per objective, e.g. 0.2,0.5,0.3"
    )
    p.set_defaults(func=_route)


def _register_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="answer a prompt with the member a router picks",
        description="Send a prompt with weights (or a member id) to a router and "
        "print the reply.",
    )
    _add_connection(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--weights", help="one per objective, e.g. 0.2,0.5,0.3")
    target.add_argument("--member", help="a member id instead of weights")
    p.add_argument("--prompt", required=True, help="the text to answer")
    p.add_argument("--max-new-tokens", type=int, help="default: the router's")
    p.add_argument("--temperature", type=float, help="0 (default) is greedy")
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--stream", action="store_true", help="print text as it comes")
    p.set_defaults(func=_generate)


def parse_weights(text: str) -> list[float]:
    """'0.2,0.5,0.3' as floats; InputError naming the bad entry."""
    weights = []
    for i, part in enumerate(text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise InputError(
                f"--weights entry {i + 1} is {part.strip()!r}; give numbers "
                "separated by commas, e.g. 0.2,0.5,0.3"
            ) from None
        if not math.isfinite(value):
            raise InputError(f"--weights entry {i + 1} is {value}; it must be finite")
        weights.append(value)
    return weights


def _client(args: argparse.Namespace):
    from palm.client import RouterClient

    return RouterClient(
        args.target,
        token=os.environ.get(args.token_env) or None,
        tls_root=args.tls_root,
        timeout=args.timeout,
    )


def _route(args: argparse.Namespace) -> int:
    weights = parse_weights(args.weights)
    with _client(args) as client, _reporting(args.target):
        reply = client.route(weights)
    if args.json:
        print_json(reply)
        return 0
    c = reply["certificate"]
    print(
        f"member     {reply['member_id']}  (portfolio version "
        f"{reply['portfolio_version']})"
    )
    print(f"rewards    {', '.join(f'{r:.4f}' for r in reply['rewards'])}")
    print(f"value      {reply['value']:.4f}")
    print(
        f"guarantee  within {c['multiplicative']['gap']:.2%} (multiplicative), "
        f"{c['additive']['gap']:.4f} (additive) of the best trained policy"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    weights = parse_weights(args.weights) if args.weights else None
    sampling = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
    }
    with _client(args) as client, _reporting(args.target):
        if args.stream and not args.json:
            for chunk in client.stream(args.prompt, weights, args.member, **sampling):
                sys.stdout.write(chunk)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0
        reply = client.generate(args.prompt, weights, args.member, **sampling)
    if args.json:
        print_json(reply)
    else:
        print(reply["text"])
    return 0


@contextlib.contextmanager
def _reporting(target: str) -> Iterator[None]:
    """A router that fails or cannot be reached becomes a one-line error."""
    import grpc

    try:
        yield
    except grpc.RpcError as e:
        raise PalmError(f"router {target}: {e.code().name}: {e.details()}") from e
