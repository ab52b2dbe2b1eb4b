"""Router speed on loopback, beside a bare grpcio echo server measured in the same run.

    .venv/bin/python bench/router.py [--portfolio P.json] [--seconds 3]

Route: p50/p99 latency and calls/s at 1, 16 and 64 concurrent callers, for the
router and for an echo server with no work in its handler (target: the router
reaches 80 % of the echo server's calls/s). Generation: tokens/s with 5 members at
16 concurrent callers, batched across members vs one request at a time (target 3x)
and vs a single adapter batched (target 0.7x). Servers run as subprocesses; this
process is the client. Without --portfolio a tiny model is built in a temp folder.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from palm.router.v1 import router_pb2 as pb  # noqa: E402
from palm.router.v1 import router_pb2_grpc as pb_grpc  # noqa: E402

ECHO_METHOD = "/bench.Echo/Echo"
CONCURRENCY = (1, 16, 64)


def echo_server(port: int) -> None:
    """A grpcio server whose one method returns its request bytes untouched."""
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], port: int, ready: Callable[[grpc.Channel], None]):
    """Start a server subprocess and wait (up to 120 s) until it answers."""
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while True:
        try:
            ready(channel)
            return process, channel
        except grpc.RpcError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit(f"server {' '.join(args)} did not start") from None
            time.sleep(0.2)


def start_router(portfolio: str, max_batch: int, device: str, threads: int):
    port = free_port()
    cli = "import sys; from palm.cli import main; sys.exit(main())"
    args = ["-c", cli, "router", "serve", "--portfolio", portfolio]
    args += ["--port", str(port), "--max-batch-size", str(max_batch)]
    args += ["--max-wait-ms", "2", "--reload-interval", "0", "--device", device]
    args += ["--max-queue", "512", "--threads", str(threads)]
    stub_ready = lambda ch: pb_grpc.RouterStub(ch).Route(  # noqa: E731
        pb.RouteRequest(weights=[1, 1, 1]), timeout=1
    )
    return start(args, port, stub_ready)


def start_echo():
    port = free_port()
    echo = lambda ch: ch.unary_unary(ECHO_METHOD)(b"x", timeout=1)  # noqa: E731
    return start([__file__, "--echo", str(port)], port, echo)


def load(call: Callable[[], object], callers: int, seconds: float):
    """Run `call` from `callers` threads for `seconds`; latencies and calls/s."""
    latencies: list[list[float]] = [[] for _ in range(callers)]
    stop = threading.Event()

    def caller(i: int) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            call()
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = sorted(x for xs in latencies for x in xs)
    return flat, len(flat) / elapsed


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def bench_route(router: grpc.Channel, echo: grpc.Channel, seconds: float) -> None:
    route = pb_grpc.RouterStub(router).Route
    request = pb.RouteRequest(weights=[0.2, 0.5, 0.3])
    payload = request.SerializeToString()
    call_echo = echo.unary_unary(ECHO_METHOD)
    print("\nRoute, loopback")
    print(
        f"{'callers':>7} | {'router p50/p99 ms':>17} {'calls/s':>8} | "
        f"{'echo p50/p99 ms':>15} {'calls/s':>8} | {'ratio':>5}"
    )
    for callers in CONCURRENCY:
        r_lat, r_rate = load(lambda: route(request), callers, seconds)
        e_lat, e_rate = load(lambda: call_echo(payload), callers, seconds)
        print(
            f"{callers:>7} | {pct(r_lat, 0.5):>7.2f}/{pct(r_lat, 0.99):<9.2f} "
            f"{r_rate:>8.0f} | {pct(e_lat, 0.5):>6.2f}/{pct(e_lat, 0.99):<8.2f} "
            f"{e_rate:>8.0f} | {r_rate / e_rate:>5.2f}"
        )


def tokens_per_s(channel: grpc.Channel, members: list[str], seconds: float, n: int):
    stub = pb_grpc.RouterStub(channel)
    counter = iter(range(1 << 62))
    tokens: list[int] = []

    def call() -> None:
        member = members[next(counter) % len(members)]
        reply = stub.Generate(
            pb.GenerateRequest(
                prompt="your parcel is late and the refund is not here",
                member_id=member,
                sampling=pb.SamplingParams(max_new_tokens=n),
            )
        )
        tokens.append(reply.tokens)

    _, _ = load(call, 16, 0.5)  # warm up
    tokens.clear()
    t0 = time.perf_counter()
    load(call, 16, seconds)
    return sum(tokens) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--portfolio", help="portfolio.json with >= 5 members")
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="router's torch threads")
    p.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.echo:
        return echo_server(args.echo)
    with tempfile.TemporaryDirectory() as tmp:
        portfolio = args.portfolio
        if portfolio is None:
            from services.router.tiny import build_tiny

            portfolio = str(build_tiny(tmp, adapters=5, members=5))
        run(portfolio, args)


def run(portfolio: str, args) -> None:
    from palm.portfolio import load_portfolio

    members = [m.id for m in load_portfolio(portfolio).members][:5]
    print(f"portfolio {portfolio}: {len(members)} members; cpus {os.cpu_count()}")
    processes = []
    try:
        batched, ch = start_router(portfolio, 16, args.device, args.threads)
        processes.append(batched)
        echo, echo_ch = start_echo()
        processes.append(echo)
        bench_route(ch, echo_ch, args.seconds)
        echo.terminate()
        across = tokens_per_s(ch, members, args.seconds, args.new_tokens)
        single = tokens_per_s(ch, members[:1], args.seconds, args.new_tokens)
        batched.terminate()
        alone, ch1 = start_router(portfolio, 1, args.device, args.threads)
        processes.append(alone)
        one = tokens_per_s(ch1, members, args.seconds, args.new_tokens)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    print(
        f"\nGeneration, {len(members)} members, 16 callers, "
        f"{args.new_tokens} new tokens, greedy"
    )
    print(f"{'mode':<34} {'tokens/s':>9} {'ratio':>7}")
    print(f"{'batched across members':<34} {across:>9.0f} {'1.00':>7}")
    print(f"{'one request at a time':<34} {one:>9.0f} {across / one:>6.2f}x")
    print(f"{'one adapter, batched':<34} {single:>9.0f} {across / single:>6.2f}x")


if __name__ == "__main__":
    main()
