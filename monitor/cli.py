"""Command line: argv -> one command -> exit code (0 ok, 1 runtime failure, 2 usage/config error)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print("monitor: no commands yet", args, file=sys.stderr)
    return 2
