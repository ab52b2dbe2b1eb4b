"""`palm demo`: the whole system on one machine, in a few minutes, for a newcomer.

Pretrain (or reuse) the bundled model, build the support portfolio in this process,
start the router, ask it for three user profiles and show what each one got, then
write the build report.
"""

from __future__ import annotations

import logging
import textwrap
import time
from pathlib import Path
from typing import Any

from palm import builds
from palm.store import Store

log = logging.getLogger(__name__)

PROFILES = (
    ("terse", (0.8, 0.1, 0.1)),
    ("thorough", (0.1, 0.8, 0.1)),
    ("warm", (0.1, 0.1, 0.8)),
)


def run_demo(spec_path: str, store_url: str, out: str, fresh: bool = False) -> int:
    from palm.spec import load_spec

    started = time.monotonic()
    spec = load_spec(spec_path)
    store = Store(store_url)
    _say(1, f"base model for task `{spec.task}` (pretrained once, then cached)")
    base = builds.ensure_base_model(spec, store)
    print(f"    {base}")

    _say(2, f"portfolio build from {spec_path}")
    build = None if fresh else _finished_build(store, spec)
    if build:
        print(f"    reusing finished build {build} (pass --fresh to build anew)")
        portfolio = store.read_json(builds.portfolio_path(build))
    else:
        from palm.runner import run_build

        portfolio = run_build(spec, store)
        build = portfolio["build"]
    from palm.cli.build import format_portfolio

    print(textwrap.indent(format_portfolio(portfolio), "    "))

    _say(3, "router on a free local port")
    rows = _ask_router(spec, store, build)

    _say(4, "three user profiles, one prompt")
    print(_table(rows, portfolio["objectives"]))

    _say(5, "build report")
    from palm.report import write_report

    report = write_report(store, build, Path(out) / build)
    print(f"    {report} (open it; the plots sit beside it)")
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
    return 0


def _say(step: int, text: str) -> None:
    print(f"\n[{step}/5] {text}", flush=True)


def _finished_build(store: Store, spec) -> str | None:
    """The newest build in the store made from this very spec with a portfolio."""
    for build in reversed(store.list("builds")):
        try:
            record = builds.load_record(store, build)
        except Exception:  # a foreign or broken folder is not ours to reuse
            continue
        if record["spec"] == spec.to_dict() and store.exists(
            builds.portfolio_path(build)
        ):
            return build
    return None


def _ask_router(spec, store: Store, build: str) -> list[dict[str, Any]]:
    from palm import rewards
    from palm.client import RouterClient
    from palm.tasks import get_task
    from services.router.config import RouterConfig
    from services.router.server import RouterServer

    config = RouterConfig(
        portfolio=store.uri(builds.portfolio_path(build)),
        port=0,
        reload_interval_s=0,
        threads=1,
    )
    server = RouterServer(config)
    server.start()
    print(f"    listening on 127.0.0.1:{server.port}")
    # A ticket with several facts, so the profiles' replies can differ in them.
    candidates = get_task(spec.task).prompts("eval", 20, seed=spec.seed + 1)
    prompt = max(candidates, key=lambda p: len(p.facts)).text
    print(textwrap.indent(prompt.strip(), "    | "))
    funcs = [rewards.resolve(o.reward) for o in spec.objectives]
    rows = []
    try:
        with RouterClient(f"127.0.0.1:{server.port}") as client:
            for name, weights in PROFILES:
                route = client.route(list(weights))
                reply = client.generate(
                    prompt, weights=list(weights), max_new_tokens=96, temperature=0.0
                )
                scores = [
                    float(rewards.score(f, [prompt], [reply["text"]])[0]) for f in funcs
                ]
                rows.append(
                    {
                        "profile": name,
                        "weights": weights,
                        "route": route,
                        "reply": reply["text"].strip(),
                        "rewards": scores,
                    }
                )
    finally:
        server.stop(grace=5)
    return rows


def _table(rows: list[dict[str, Any]], objectives: list[str]) -> str:
    short = [o[:6] for o in objectives]
    head = (
        f"    {'profile':<9} {'weights':<16} {'member':<7} {'cert. gap':>9}  "
        + " ".join(f"{s:>6}" for s in short)
    )
    lines = [head, "    " + "-" * (len(head) - 4)]
    for r in rows:
        gap = r["route"]["certificate"]["multiplicative"]["gap"]
        weights = ",".join(f"{w:.1f}" for w in r["weights"])
        lines.append(
            f"    {r['profile']:<9} {weights:<16} {r['route']['member_id']:<7} "
            f"{gap:>9.4f}  " + " ".join(f"{x:>6.2f}" for x in r["rewards"])
        )
    lines.append("")
    for r in rows:
        lines.append(f"    {r['profile']} ({r['route']['member_id']}):")
        lines += textwrap.wrap(
            r["reply"] or "(empty reply)",
            width=84,
            initial_indent="      ",
            subsequent_indent="      ",
        )
    return "\n".join(lines)
