"""Command-line entry: each sub-command lives in its own module exposing `register(subparsers)`.

`register` adds an argparse sub-parser and sets `func=handler(args) -> int` on it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable

# Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES = ("generate", "post", "queue", "caption", "calibrate", "download")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="FP-Studio command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"studio.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


def print_field_errors(errors: Iterable[tuple[str, str]]) -> None:
    """One "invalid FIELD: message" line per refused input on stderr, the same for every command."""
    for field, message in errors:
        print(f"invalid {field}: {message}", file=sys.stderr)
