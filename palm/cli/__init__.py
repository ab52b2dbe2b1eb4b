"""The `palm` command. Each area registers its subcommands from its own module.

Bad input exits with status 2 and one line naming the value and the rule.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from palm.errors import InputError, PalmError

# Modules that add subcommands; each has `register(subparsers)`. A module that is
# not written yet is skipped, so areas can land one at a time.
_AREAS = ("core", "model", "build", "worker", "router", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="palm",
        description="PALM: a small portfolio of LoRA policies, near-optimal for "
        "every user's weight vector, served behind a gRPC router.",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="logging level (default: WARNING)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in _AREAS:
        try:
            module = importlib.import_module(f"palm.cli.{area}")
        except ModuleNotFoundError as e:
            if e.name != f"palm.cli.{area}":
                raise
            continue
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """The CLI narrates its own progress; library bars and notices would drown it."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # TODO: drop once trl stops passing transformers' renamed gradient_checkpointing
    # arguments (trl 1.16 with transformers 5.24 warns on every trainer).
    warnings.filterwarnings(
        "ignore",
        message=".* is deprecated and will be removed in v6",
        category=FutureWarning,
    )


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"palm {args.command}: {e}", file=sys.stderr)
        return 2
    except PalmError as e:
        print(f"palm {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
