"""How long hostile input takes to refuse: the depth scan of request bodies, the
``numeric`` verifier and the ``json_schema`` verifier on the inputs the unit tests use
against blow-ups. The depth scan is also timed on twice the input: a linear reading
takes about twice as long (× 2), a quadratic one four times. Needs no services, takes a
few seconds. Prints figures; asserts nothing about timing (the tests
only check that each input is refused without blowing up).

    .venv/bin/python bench/hostile.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.jsonlimits import nested_too_deep
from ponder.problem import Problem
from ponder.verifiers.json_schema import BoundedChecker, JsonSchemaVerifier
from ponder.verifiers.numeric import NumericVerifier

FREE = Problem(prompt="Say something.")

# name -> the input at scale k (k = 1: the size the tests use)
DEPTH_SCAN: dict[str, Callable[[int], str]] = {
    "escaped quotes": lambda k: '\\"' * 500_000 * k,
    "one long escape run": lambda k: '"' + "\\" * (1_000_001 * k),
    "brackets then quotes": lambda k: "[" * 500_000 * k + '"' * 500_000 * k,
    "unterminated string": lambda k: '["' + "a" * 1_000_000 * k,
}
NUMERIC: dict[str, Callable[[int], str]] = {
    "100 000 nines": lambda k: "9" * 100_000 * k,
    "500 ones": lambda k: "1" * 500 * k,
    "1e999999999": lambda k: "1e999999999",
    "1e-99999999999999999999": lambda k: "1e-99999999999999999999",
    "nested \\boxed{}": lambda k: "\\boxed{" * 5000 * k + "1" + "}" * 5000 * k,
    "10 000 open braces": lambda k: "{" * 10_000 * k,
    "operators and spaces": lambda k: "1 " * 4000 * k + "/",
    "minus signs": lambda k: "- " * 4000 * k,
    "digits, spaces, a letter": lambda k: "1" + " " * 9000 * k + "x",
}
JSON_SCHEMA: dict[str, Callable[[int], str]] = {
    "unclosed fence": lambda k: "```json\n" + "`" * 50_000 * k,
    "40 000 open brackets": lambda k: "[" * 40_000 * k + "]" * 40_000 * k,
    "200 nested arrays": lambda k: "[" * 200 * k + "]" * 200 * k,
    "500 000 numbers": lambda k: "[" + "1," * 500_000 * k + "1]",
}


def seconds(check: Callable[[str], object], text: str, repeat: int) -> float:
    """The fastest of ``repeat`` checks of ``text`` (the one least disturbed by whatever
    else the machine runs)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        check(text)
        times.append(time.perf_counter() - start)
    return min(times)


def table(
    title: str,
    cases: dict[str, Callable[[int], str]],
    check: Callable[[str], object],
    repeat: int,
    *,
    doubled: bool,
) -> None:
    """One line per case: the time at the tests' size and, with ``doubled``, at
    twice it (the verifiers refuse an answer over their length limit before reading it,
    so only the depth scan, which has no such limit, is doubled)."""
    print(title)
    for name, make in cases.items():
        text = make(1)
        once = seconds(check, text, repeat)
        line = f"  {name:26} {len(text):>9} chars {once * 1000:8.2f} ms"
        if doubled:
            twice = seconds(check, make(2), repeat)
            line += f"; twice as long {twice * 1000:8.2f} ms (× {twice / max(once, 1e-9):.1f})"
        print(line)


def figures(repeat: int) -> None:
    """Print every figure (``bench/verifiers.py`` ends with these too)."""

    def scan(text: str) -> object:
        return nested_too_deep(text), nested_too_deep(text.encode())

    table(
        "request bodies: the nesting-depth scan (text and bytes)",
        DEPTH_SCAN,
        scan,
        repeat,
        doubled=True,
    )
    numeric = NumericVerifier()
    table(
        "numeric verifier: answers that never pass",
        NUMERIC,
        lambda text: numeric.check(42, text),
        repeat,
        doubled=False,
    )
    array = JsonSchemaVerifier({"type": "array"})
    table(
        "json_schema verifier: answers it refuses unread or unchecked",
        JSON_SCHEMA,
        lambda text: asyncio.run(array.verify(FREE, text)),
        repeat,
        doubled=False,
    )

    # a schema check that would run for minutes is stopped at the verifier's timeout
    checker = BoundedChecker()
    try:
        costly = json.dumps([{"a": i} for i in range(7_500)], separators=(",", ":"))
        verifier = JsonSchemaVerifier({"uniqueItems": True}, checker=checker, timeout_s=0.5)
        start = time.perf_counter()
        verdict = asyncio.run(verifier.verify(FREE, costly))
        took = time.perf_counter() - start
        print("json_schema verifier: a quadratic check (uniqueItems over 7 500 objects)")
        print(f"  stopped at its 0.5 s timeout after {took:.2f} s: {verdict.feedback}")
    finally:
        checker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per figure (the fastest is shown)"
    )
    figures(parser.parse_args().repeat)


if __name__ == "__main__":
    main()
