"""`palm model`: the bundled base model.

palm model pretrain --task support --out DIR [--steps N ...] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from palm.cli._common import add_json_flag, print_json
from palm.pretrain import PretrainSettings, is_built, pretrain
from palm.tasks import task_names


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="build the bundled base model")
    sub = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    parser = sub.add_parser(
        "pretrain",
        help="pre-train (or find cached) the bundled model of a task",
        description="Train a small tokenizer and causal LM on a task's corpus. "
        "The model lands in OUT/<task>-<hash of the settings>/; the same settings "
        "again return that folder at once.",
    )
    parser.add_argument("--task", default="support", choices=task_names())
    parser.add_argument(
        "--out",
        default=None,
        help="cache folder (default: the one builds use, $PALM_CACHE/models or "
        "~/.cache/palm/models)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch while training"
    )
    for field in dataclasses.fields(PretrainSettings):
        flag = "--" + field.name.replace("_", "-")
        kind = float if field.type == "float" else int
        parser.add_argument(
            flag, type=kind, default=field.default, help=f"(default: {field.default})"
        )
    add_json_flag(parser)
    parser.set_defaults(func=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    settings = PretrainSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainSettings)}
    )
    if not args.json and args.log_level.upper() == "WARNING":
        # Training takes a minute; show its progress lines unless asked for quiet.
        logging.getLogger("palm.pretrain").setLevel(logging.INFO)
    out = args.out or _build_cache_dir()
    cached = is_built(args.task, out, settings)
    started = time.monotonic()
    path = pretrain(args.task, out, settings, threads=args.threads)
    result = {
        "path": str(path),
        "task": args.task,
        "hash": settings.digest(args.task),
        "cached": cached,
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        print_json(result)
    else:
        state = "cached" if cached else f"built in {result['seconds']}s"
        print(f"{path} ({state})")
    return 0


def _build_cache_dir():
    # Where `palm build` looks for the bundled model, so a pretrain here serves it.
    from palm.builds import model_cache_dir

    return model_cache_dir()
