"""`palm worker train|evaluate|prune`: start one kind of worker on its own queue."""

from __future__ import annotations

import argparse

from palm.cli._common import add_broker_store

# Training and evaluation load a model: each task gets a fresh process so memory
# (GPU memory above all) is returned and hard time limits can kill it cleanly.
_FRESH_PROCESS = {"train": True, "evaluate": True, "prune": False}


def register(sub) -> None:
    parser = sub.add_parser("worker", help="start a worker for one queue")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in ("train", "evaluate", "prune"):
        p = kinds.add_parser(kind, help=f"consume the `{kind}` queue")
        add_broker_store(p)
        p.add_argument(
            "--concurrency", type=int, default=1, help="tasks at once (default 1)"
        )
        p.add_argument(
            "--max-deliveries",
            type=int,
            default=3,
            help="deliveries of one task before it is marked failed (default 3)",
        )
        p.add_argument("--hostname", help="worker name (default KIND@host)")
        p.add_argument("--loglevel", default="INFO", help="worker log level")
        p.set_defaults(func=_start)


def _start(args: argparse.Namespace) -> int:
    from palm.errors import InputError
    from services.worker import QUEUES, WorkerConfig, make_app

    if args.concurrency < 1:
        raise InputError(f"--concurrency is {args.concurrency}; it must be ≥ 1")
    config = WorkerConfig(
        broker_url=args.broker,
        store_url=args.store,
        max_deliveries=args.max_deliveries,
    )
    app = make_app(config)
    worker = app.Worker(
        queues=[QUEUES[f"palm.{args.kind}"]],
        concurrency=args.concurrency,
        pool="prefork",
        max_tasks_per_child=1 if _FRESH_PROCESS[args.kind] else None,
        prefetch_multiplier=1,
        hostname=args.hostname or f"{args.kind}@%h",
        loglevel=args.loglevel,
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    return worker.exitcode or 0
