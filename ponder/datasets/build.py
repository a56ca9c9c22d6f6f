"""Generate the shipped datasets: ``python -m ponder.datasets.build [--check]``.

Deterministic: running it again writes byte-identical files (``--check`` only compares
and exits 1 on a difference).

Game of 24 difficulty
---------------------
A *search path* is one full sequence of moves: pick two of the numbers left, combine
them with one of ``a+b, a*b, a-b, b-a, a/b, b/a`` (exact fractions; a division by zero
ends the path unsolved), until one number is left. Four numbers have
``6*6 * 3*6 * 1*6 = 3888`` paths. ``difficulty = 3888 / (paths that end at 24)`` — the
expected number of uniformly random paths a searcher must try per solution found, so
``1 2 3 4`` (many solutions) is easy and ``3 3 8 8`` (one, through fractions) is hard.
It is order-independent, unlike "nodes a fixed-order DFS expands first", which mostly
measures the order. Puzzles are listed easiest first (ties by the numbers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections.abc import Iterator
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from ponder.datasets import ARITHMETIC_DEPTHS, ARITHMETIC_SIZE, DATA_DIR
from ponder.families.arithmetic import make_problem

TARGET = Fraction(24)
GAME24_RANGE = range(1, 14)
GAME24_SIZE = 4


def _outcomes(a: Fraction, b: Fraction) -> list[Fraction | None]:
    """The six move results, in a fixed order (None: division by zero)."""
    return [
        a + b,
        a * b,
        a - b,
        b - a,
        a / b if b else None,
        b / a if a else None,
    ]


@cache
def _paths(n: int) -> int:
    """Search paths from ``n`` numbers."""
    return 1 if n == 1 else n * (n - 1) // 2 * 6 * _paths(n - 1)


@cache
def _solving_paths(state: tuple[Fraction, ...]) -> int:
    """How many of the search paths from ``state`` (sorted) end at 24."""
    if len(state) == 1:
        return 1 if state[0] == TARGET else 0
    total = 0
    for i, j in itertools.combinations(range(len(state)), 2):
        rest = state[:i] + state[i + 1 : j] + state[j + 1 :]
        for value in _outcomes(state[i], state[j]):
            if value is not None:
                total += _solving_paths(tuple(sorted((*rest, value))))
    return total


def solution_paths(numbers: list[int]) -> int:
    return _solving_paths(tuple(sorted(Fraction(n) for n in numbers)))


def game24_difficulty(numbers: list[int]) -> float | None:
    """Random search paths per solution (see module notes); None if unsolvable."""
    solving = solution_paths(numbers)
    return None if solving == 0 else round(_paths(len(numbers)) / solving, 2)


def solve_game24(numbers: list[int]) -> str | None:
    """One solution (fixed-order depth-first search), as an expression, or None."""

    def dfs(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == TARGET else None
        for i, j in itertools.combinations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [it for k, it in enumerate(items) if k not in (i, j)]
            exprs = [
                f"({ea} + {eb})",
                f"({ea} * {eb})",
                f"({ea} - {eb})",
                f"({eb} - {ea})",
                f"({ea} / {eb})",
                f"({eb} / {ea})",
            ]
            for value, expr in zip(_outcomes(a, b), exprs, strict=True):
                if value is None:
                    continue
                found = dfs([*rest, (value, expr)])
                if found is not None:
                    return found
        return None

    found = dfs([(Fraction(n), str(n)) for n in numbers])
    if found is not None and found.startswith("(") and found.endswith(")"):
        found = found[1:-1]
    return found


def all_game24_puzzles() -> Iterator[list[int]]:
    for combo in itertools.combinations_with_replacement(GAME24_RANGE, GAME24_SIZE):
        yield list(combo)


def build_game24() -> list[dict[str, Any]]:
    items = []
    for numbers in all_game24_puzzles():
        difficulty = game24_difficulty(numbers)
        if difficulty is None:
            continue
        items.append(
            {
                "id": "game24-" + "-".join(map(str, numbers)),
                "task": "game24",
                "input": {"numbers": numbers},
                "difficulty": difficulty,
            }
        )
    items.sort(key=lambda it: (it["difficulty"], numbers_of(it)))
    return items


def numbers_of(item: dict[str, Any]) -> list[int]:
    numbers: list[int] = item["input"]["numbers"]
    return numbers


def build_arithmetic(depth: int, size: int = ARITHMETIC_SIZE) -> list[dict[str, Any]]:
    rng = random.Random(f"ponder-arithmetic-d{depth}")
    items = []
    for k in range(size):
        question, answer = make_problem(depth, rng)
        items.append(
            {
                "id": f"arithmetic-d{depth}-{k:03d}",
                "task": "arithmetic",
                "input": {"question": question},
                "expected": answer,
                "difficulty": depth,
            }
        )
    return items


def build_all() -> dict[str, list[dict[str, Any]]]:
    """File stem → items, for every shipped file."""
    files = {"game24-all": build_game24()}
    for depth in ARITHMETIC_DEPTHS:
        files[f"arithmetic-d{depth}"] = build_arithmetic(depth)
    return files


def to_jsonl(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate Ponder's shipped datasets.")
    parser.add_argument("--check", action="store_true", help="only compare with the shipped files")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for stem, items in build_all().items():
        path = args.out / f"{stem}.jsonl"
        text = to_jsonl(items)
        if args.check:
            if not path.exists() or path.read_text("utf-8") != text:
                stale.append(stem)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        print(f"wrote {path} ({len(items)} items)")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m ponder.datasets.build")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
