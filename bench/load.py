"""The router under load: 64 concurrent callers, mixed calls, for a bounded time.

    .venv/bin/python bench/load.py [--seconds 20] [--callers 64] [--portfolio P.json]

A real `palm router serve` subprocess (the tiny model of services/router/tiny.py
unless --portfolio is given) on loopback. Each caller loops over Route, Generate,
GenerateStream read to the end, GenerateStream cancelled after its first chunk,
and Generate with a deadline of a few milliseconds. The only failures allowed are
RESOURCE_EXHAUSTED (the queue is kept small on purpose, so some are refused),
DEADLINE_EXCEEDED, and CANCELLED for the streams this script cancels itself. The
server's resident memory and thread count are read from /proc at start, after a
warm-up with every caller running, and after the run: memory must stay within 10 %
of the warm-up figure and threads within grpc's handler pool. Prints a table;
exits 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import collections
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from palm.router.v1 import router_pb2 as pb  # noqa: E402
from palm.router.v1 import router_pb2_grpc as pb_grpc  # noqa: E402

KINDS = ("route", "generate", "stream", "stream-cancelled", "short-deadline")
# Overload may refuse any call (a full queue, or grpc's limit on calls in flight).
ALLOWED = {
    "route": {"RESOURCE_EXHAUSTED"},
    "generate": {"RESOURCE_EXHAUSTED"},
    "stream": {"RESOURCE_EXHAUSTED"},
    "stream-cancelled": {"RESOURCE_EXHAUSTED", "CANCELLED"},
    "short-deadline": {"RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"},
}
RSS_SLACK = 0.10  # resident memory may move this much between warm-up and end
PROMPTS = ("your parcel is late", "thanks for the help", "the refund is not here")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_router(
    portfolio: str, max_queue: int, log: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    args = [sys.executable, "-m", "palm.cli", "--log-level", "WARNING"]
    args += ["router", "serve"]
    args += ["--portfolio", portfolio, "--port", str(port), "--device", "cpu"]
    args += ["--threads", "1", "--reload-interval", "0", "--max-batch-size", "16"]
    args += ["--max-queue", str(max_queue), "--max-new-tokens", "32"]
    args += ["--default-new-tokens", "8"]
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        deadline = time.monotonic() + 120
        while True:
            try:
                stub.Route(pb.RouteRequest(weights=[1, 1, 1]), timeout=1)
                return process, port
            except grpc.RpcError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise SystemExit("the router did not start") from None
                time.sleep(0.2)  # polling for the server to answer, with a deadline


def proc_status(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, threads) of a process, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


class Caller(threading.Thread):
    """One client thread: loops over the kinds of call and counts their outcomes."""

    def __init__(self, index: int, stub, members: list[str], stop: threading.Event):
        super().__init__(daemon=True)
        self.index, self.stub, self.members, self.stop = index, stub, members, stop
        self.random = random.Random(index)
        self.outcomes: collections.Counter = collections.Counter()
        self.errors: list[str] = []

    def run(self) -> None:
        n = self.index
        while not self.stop.is_set():
            kind = KINDS[n % len(KINDS)]
            n += 1
            try:
                getattr(self, kind.replace("-", "_"))()
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
                if code not in ALLOWED[kind]:
                    self.errors.append(f"{kind}: {code}: {e.details()}")
            self.outcomes[(kind, code)] += 1
            if code == "RESOURCE_EXHAUSTED":
                # A client told the server is full backs off before it tries again.
                self.stop.wait(self.random.uniform(0.01, 0.05))

    def _request(self) -> pb.GenerateRequest:
        r = self.random
        request = pb.GenerateRequest(
            prompt=r.choice(PROMPTS),
            sampling=pb.SamplingParams(max_new_tokens=r.randint(1, 12)),
        )
        if r.random() < 0.5:
            request.member_id = r.choice(self.members)
        else:
            request.weights.values.extend(r.random() + 0.01 for _ in range(3))
        return request

    def route(self) -> None:
        weights = [self.random.random() + 0.01 for _ in range(3)]
        self.stub.Route(pb.RouteRequest(weights=weights), timeout=30)

    def generate(self) -> None:
        self.stub.Generate(self._request(), timeout=30)

    def stream(self) -> None:
        for _ in self.stub.GenerateStream(self._request(), timeout=30):
            pass

    def stream_cancelled(self) -> None:
        call = self.stub.GenerateStream(self._request(), timeout=30)
        for _ in call:
            call.cancel()  # mid-stream, after the first chunk
            break
        raise_cancelled(call)

    def short_deadline(self) -> None:
        self.stub.Generate(self._request(), timeout=self.random.uniform(0.002, 0.05))


def raise_cancelled(call) -> None:
    """A stream this script cancelled counts as CANCELLED, as the server sees it."""
    if call.code() == grpc.StatusCode.CANCELLED:
        raise call


def run_callers(stub, members, callers: int, seconds: float) -> list[Caller]:
    stop = threading.Event()
    threads = [Caller(i, stub, members, stop) for i in range(callers)]
    for t in threads:
        t.start()
    stop.wait(seconds)  # the run's length, not a synchronisation
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return threads


def table(threads: list[Caller]) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    for t in threads:
        total.update(t.outcomes)
    codes = sorted({code for _, code in total}, key=lambda c: (c != "OK", c))
    print(f"\n{'call':<16} {'calls':>7} " + " ".join(f"{c:>18}" for c in codes))
    for kind in KINDS:
        row = [total[(kind, c)] for c in codes]
        print(f"{kind:<16} {sum(row):>7} " + " ".join(f"{x:>18}" for x in row))
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of the run")
    p.add_argument("--callers", type=int, default=64, help="concurrent callers")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before RSS")
    p.add_argument("--max-queue", type=int, default=48, help="router's --max-queue")
    p.add_argument("--portfolio", help="portfolio.json (default: a tiny model)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        portfolio = args.portfolio
        if portfolio is None:
            from services.router.tiny import build_tiny

            portfolio = str(build_tiny(tmp, adapters=5, members=5))
        return run(portfolio, args, Path(tmp) / "router.log")


def run(portfolio: str, args, log: Path) -> int:
    from palm.portfolio import load_portfolio
    from services.router.config import RouterConfig

    members = [m.id for m in load_portfolio(portfolio).members]
    process, port = start_router(portfolio, args.max_queue, log)
    try:
        first = proc_status(process.pid)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            run_callers(stub, members, args.callers, args.warmup)
            warm = proc_status(process.pid)
            threads = run_callers(stub, members, args.callers, args.seconds)
            end = proc_status(process.pid)
            alive = stub.Route(pb.RouteRequest(weights=[1, 1, 1]), timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=60)
    total = table(threads)
    errors = [e for t in threads for e in t.errors]
    # The server's own complaints (warnings and up): a failed reply shows here
    # even when the client that was to get it had already gone.
    logged = [line for line in log.read_text().splitlines() if "Traceback" in line]
    logged += [line for line in log.read_text().splitlines() if " ERROR " in line]
    calls = sum(total.values())
    print(
        f"\n{args.callers} callers, {args.seconds:g} s, {calls} calls "
        f"({calls / args.seconds:.0f}/s), unexpected errors: {len(errors)}, "
        f"errors in the server's log: {len(logged)}"
    )
    print(f"{'server':<22} {'started':>10} {'after warm-up':>14} {'end':>10}")
    print(f"{'resident memory MiB':<22} " + _row([first[0], warm[0], end[0]], 1024))
    print(f"{'threads':<22} " + _row([first[1], warm[1], end[1]], 1))
    for line in sorted(set(errors))[:10] + logged[:10]:
        print(f"  error: {line}")
    # grpc's handler pool starts threads as calls need them, up to its size, and
    # keeps them: a leak is a count past the pool, not one that has filled it.
    pool = RouterConfig(portfolio, max_queue=args.max_queue).handler_threads
    print(f"{'threads bound':<22} {first[1] + pool:>10} (started + handler pool)")
    grew = end[0] > warm[0] * (1 + RSS_SLACK)
    leaked = end[1] > first[1] + pool
    ok = not errors and not logged and not grew and not leaked and bool(alive.member_id)
    print(
        f"\nresult: {'PASS' if ok else 'FAIL'} (memory {'grew' if grew else 'flat'}, "
        f"threads {'past the pool' if leaked else 'within the pool'}, "
        "server answering after the run)"
    )
    return 0 if ok else 1


def _row(values: list[int], scale: int) -> str:
    a, b, c = (v / scale for v in values)
    return f"{a:>10.1f} {b:>14.1f} {c:>10.1f}"


if __name__ == "__main__":
    sys.exit(main())
