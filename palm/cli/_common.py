"""Helpers shared by the CLI modules: JSON output, file reading, broker and store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from palm.errors import InputError


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON"
    )


def add_broker_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=os.environ.get("PALM_BROKER_URL", "redis://127.0.0.1:6379/0"),
        help="broker URL (default: $PALM_BROKER_URL or redis://127.0.0.1:6379/0)",
    )
    add_store(parser)


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("PALM_STORE_URL", "store"),
        help="store URL, a local folder or any fsspec URL "
        "(default: $PALM_STORE_URL or ./store)",
    )


def read_json_file(path: str, what: str) -> Any:
    """Read a JSON file given on the command line; bad input is an InputError."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputError(f"{what} {path!r} cannot be read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} {path!r} is not UTF-8 text (byte {e.start}): give a JSON file"
        ) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{what} {path!r} is not valid JSON: {e.msg} at line {e.lineno}"
        ) from e


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
