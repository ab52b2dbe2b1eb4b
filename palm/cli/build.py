"""`palm build run|submit|status|resume|report`: portfolio builds."""

from __future__ import annotations

import argparse
import sys
import time

from palm.cli._common import add_broker_store, add_json_flag, add_store, print_json


def register(sub) -> None:
    parser = sub.add_parser("build", help="run, submit and follow portfolio builds")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    run = verbs.add_parser("run", help="run a whole build in this process, no broker")
    run.add_argument("spec", help="build spec (TOML)")
    add_store(run)
    run.add_argument("--build", help="finish this existing build instead of a new one")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_json_flag(run)
    run.set_defaults(func=_run)

    submit = verbs.add_parser("submit", help="enqueue a build for the workers")
    submit.add_argument("spec", help="build spec (TOML)")
    add_broker_store(submit)
    add_json_flag(submit)
    submit.set_defaults(func=_submit)

    status = verbs.add_parser("status", help="stages, counts and running tasks")
    status.add_argument("build", help="build id")
    add_broker_store(status)
    status.add_argument("--watch", action="store_true", help="refresh until it ends")
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes"
    )
    add_json_flag(status)
    status.set_defaults(func=_status)

    resume = verbs.add_parser("resume", help="enqueue only what the store lacks")
    resume.add_argument("build", help="build id")
    add_broker_store(resume)
    add_json_flag(resume)
    resume.set_defaults(func=_resume)

    report = verbs.add_parser("report", help="a Markdown page with plots")
    report.add_argument("build", help="build id")
    add_store(report)
    report.add_argument("--out", required=True, help="folder to write the report to")
    add_json_flag(report)
    report.set_defaults(func=_report)


def _worker_config(args: argparse.Namespace):
    from services.worker import WorkerConfig

    return WorkerConfig(broker_url=args.broker, store_url=args.store)


def _run(args: argparse.Namespace) -> int:
    from palm.runner import run_build
    from palm.spec import load_spec
    from palm.store import Store

    spec = load_spec(args.spec)
    portfolio = run_build(spec, Store(args.store), args.build, progress=not args.quiet)
    if args.json:
        print_json(portfolio)
    else:
        print(format_portfolio(portfolio))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from palm.spec import load_spec
    from services.builds import submit

    spec = load_spec(args.spec)
    result = submit(_worker_config(args), spec)
    if args.json:
        print_json(result)
    else:
        counts = result["enqueued"]
        print(
            f"{result['build']}\n  enqueued: {counts['train']} train, "
            f"{counts['evaluate']} evaluate, {counts['prune']} prune"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    from services.builds import status

    config = _worker_config(args)
    while True:
        current = status(config, args.build)
        if args.json:
            print_json(current)
        else:
            print(format_status(current), flush=True)
        if not args.watch or current["state"] in ("done", "failed", "stalled"):
            return 0 if current["state"] != "failed" else 1
        time.sleep(args.interval)  # a person is watching: refresh on a clock


def _resume(args: argparse.Namespace) -> int:
    from services.builds import enqueue_missing

    result = {"build": args.build, **enqueue_missing(_worker_config(args), args.build)}
    if args.json:
        print_json(result)
    else:
        c = result["enqueued"]
        print(
            f"{args.build}: enqueued {c['train']} train, {c['evaluate']} evaluate, "
            f"{c['prune']} prune"
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from palm.report import write_report
    from palm.store import Store

    path = write_report(Store(args.store), args.build, args.out)
    if args.json:
        print_json({"build": args.build, "report": str(path)})
    else:
        print(f"report written to {path}")
    return 0


def format_portfolio(portfolio: dict) -> str:
    """A readable table of the members and the certificate."""
    objectives = portfolio["objectives"]
    width = max(10, *(len(o) for o in objectives))
    head = f"{'member':<8} " + " ".join(
        f"{'w:' + o[: width - 2]:>{width}}" for o in objectives
    )
    head += "  " + " ".join(f"{o:>{width}}" for o in objectives)
    lines = [
        f"build {portfolio['build']}  version {portfolio['version']}  "
        f"{len(portfolio['members'])} of {portfolio['trained']} policies  "
        f"solver {portfolio['solver']}",
        head,
    ]
    for m in portfolio["members"]:
        lines.append(
            f"{m['id']:<8} "
            + " ".join(f"{x:>{width}.3f}" for x in m["weight"])
            + "  "
            + " ".join(f"{x:>{width}.3f}" for x in m["rewards"])
        )
    cert = portfolio["certificate"]
    lines.append(
        f"certified worst-case gap over the whole simplex: multiplicative "
        f"{cert['multiplicative']['gap']:.4f}, additive {cert['additive']['gap']:.4f}"
    )
    return "\n".join(lines)


def format_status(s: dict) -> str:
    lines = [f"build {s['build']}: {s['state']}"]
    for stage, info in s["stages"].items():
        running = ", ".join(
            r["policy"] + (f" step {r['step']}/{r['of']}" if "step" in r else "")
            for r in info["running"]
        )
        lines.append(
            f"  {stage:<9} {info['done']}/{info['of']} done"
            + (f"; running: {running}" if running else "")
        )
    if s.get("waiting"):
        lines.append(f"  queued    {s['waiting']} task(s)")
    for f in s["failed"]:
        lines.append(f"  failed    {f['policy']} ({f['stage']}): {f['reason']}")
    if s["state"] == "stalled":
        lines.append("  nothing is queued or running: `palm build resume` finishes it")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `palm build`")
