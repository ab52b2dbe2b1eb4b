"""`palm demo`: the whole system working on this machine, in minutes."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    parser = sub.add_parser(
        "demo", help="pretrain, build, serve and query a portfolio, end to end"
    )
    parser.add_argument(
        "--spec", default="examples/support.toml", help="build spec to demonstrate"
    )
    parser.add_argument(
        "--store", default="store", help="store folder (default ./store)"
    )
    parser.add_argument("--out", default="out/demo", help="where the report goes")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="build anew even if a finished build exists",
    )
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import logging

    from palm.demo import run_demo

    # The demo narrates its own stages; library logs would drown them, except the
    # pretraining's progress lines, the one long wait without a bar.
    logging.getLogger("palm").setLevel(logging.WARNING)
    logging.getLogger("palm.pretrain").setLevel(logging.INFO)
    return run_demo(args.spec, args.store, args.out, fresh=args.fresh)
