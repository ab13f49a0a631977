"""Fuzzing with many thousands of inputs: the frame decoder on its own, then frames and HTTP
requests through a running daemon.

    .venv/bin/python -m bench.fuzz [--decoder 20000] [--factor 100] [--quick]

1. The decoder (monitor.core.wire.decode) gets `--decoder` inputs of each kind: arbitrary text and
   bytes, arbitrary JSON, and real frames with fields deleted or replaced (the strategies of
   tests/core/test_wire.py). Whatever the input, it returns a message or raises DecodeError.
2. The properties of tests/test_fuzz.py (frames sent by the simulator on the daemon's socket,
   arbitrary HTTP requests to its listener, requests to the action endpoint) run with FUZZ_EXAMPLES_FACTOR=`--factor`, that is
   `--factor` times the suite's example counts, in a pytest run of their own.

Exit code 1 when any input crashed something.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness import PYTHON, ROOT
from monitor.core.wire import decode
from monitor.errors import DecodeError
from tests.core.test_wire import MESSAGE_TYPES, RECEIVED, json_values, mutated_frames

INPUTS = {
    "arbitrary text and bytes": st.text() | st.binary(),
    "arbitrary JSON": json_values.map(json.dumps),
    "mutated real frames": mutated_frames().map(json.dumps),
}


def decoder_property(strategy: st.SearchStrategy[Any], examples: int) -> tuple[int, float]:
    """Run `examples` inputs through decode(); returns (inputs decoded, seconds)."""
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def check(text: str | bytes) -> None:
        nonlocal count
        count += 1
        try:
            message = decode(text, RECEIVED)
        except DecodeError:
            return
        assert isinstance(message, MESSAGE_TYPES), f"decode returned {message!r}"

    started = time.perf_counter()
    check()
    return count, time.perf_counter() - started


def through_the_daemon(factor: int) -> tuple[int, str]:
    """The suite's fuzz properties with `factor` times the examples; (exit code, summary)."""
    env = {**os.environ, "FUZZ_EXAMPLES_FACTOR": str(factor), "PYTHONPATH": str(ROOT)}
    command = [
        PYTHON,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        "tests/test_fuzz.py",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def _passing(statistics: str) -> list[str]:
    """The per-test lines of Hypothesis's statistics that count examples."""
    out, test = [], ""
    for line in statistics.splitlines():
        if line.startswith("tests/test_fuzz.py::"):
            test = line.split("::")[1].rstrip(":")
        elif "passing" in line and test:
            out.append(f"{test}: {line.strip().lstrip('- ')}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", type=int, default=20_000, help="decoder inputs of each kind")
    parser.add_argument("--factor", type=int, default=100, help="x the suite's example counts")
    parser.add_argument("--quick", action="store_true", help="2,000 decoder inputs, factor 5")
    args = parser.parse_args()
    if args.quick:
        args.decoder, args.factor = 2_000, 5
    ok = True
    for name, strategy in INPUTS.items():
        try:
            count, seconds = decoder_property(strategy, args.decoder)
        except Exception as exc:  # a failing property: report it, keep going
            ok = False
            print(f"decoder, {name}: FAILED: {exc}")
            continue
        print(f"decoder, {name}: {count:,} inputs in {seconds:.1f} s, none escaped DecodeError")
    started = time.perf_counter()
    code, output = through_the_daemon(args.factor)
    seconds = time.perf_counter() - started
    lines = _passing(output)
    print(f"through a running daemon (x{args.factor} the suite's examples, {seconds:.0f} s):")
    for line in lines:
        print(f"  {line}")
    if code != 0:
        ok = False
        print(output[-4000:])
    print("no input crashed anything" if ok else "SOME INPUTS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
