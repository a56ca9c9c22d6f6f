"""Shipped datasets: complete, verified, reproducible, listed by the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from ponder.cli import app
from ponder.datasets import DATA_DIR, as_problem, list_datasets, load_dataset
from ponder.datasets.build import (
    all_game24_puzzles,
    build_all,
    game24_difficulty,
    solve_game24,
    to_jsonl,
)
from ponder.families import get_task
from ponder.problem import Problem
from ponder.verifiers.game24 import check_expression
from ponder.verifiers.numeric import NumericVerifier


def test_there_are_1362_solvable_puzzles_over_1_to_13() -> None:
    puzzles = list(all_game24_puzzles())
    assert len(puzzles) == 1820  # multisets of 4 numbers from 1..13
    solvable = [p for p in puzzles if game24_difficulty(p) is not None]
    assert len(solvable) == 1362
    # the solver agrees with the path counter (exhaustive search on unsolvable ones is
    # slow, so check a sample of those)
    unsolvable = [p for p in puzzles if p not in solvable]
    assert len(unsolvable) == 1820 - 1362
    assert all(solve_game24(p) is None for p in unsolvable[::20])
    assert len(load_dataset("game24-all")) == 1362


def test_every_game24_item_verifies_with_a_found_solution() -> None:
    for item in load_dataset("game24-all"):
        numbers = item["input"]["numbers"]
        solution = solve_game24(numbers)
        assert solution is not None, numbers
        assert check_expression(numbers, solution).passed, (numbers, solution)
        Problem.model_validate(as_problem(item))
        get_task("game24").validate_input(item["input"])


def test_game24_is_ranked_by_difficulty() -> None:
    items = load_dataset("game24-all")
    ranks = [it["difficulty"] for it in items]
    assert ranks == sorted(ranks)
    index = {tuple(it["input"]["numbers"]): k for k, it in enumerate(items)}
    assert index[(1, 2, 3, 4)] < index[(3, 3, 8, 8)]
    assert index[(3, 3, 8, 8)] > len(items) * 0.7
    assert load_dataset("game24-easy") == items[:50]
    assert load_dataset("game24-hard") == items[-50:]
    assert len({it["id"] for it in items}) == len(items)


def test_arithmetic_sets_verify() -> None:
    verifier = NumericVerifier()
    for depth in (1, 2, 4, 8):
        items = load_dataset(f"arithmetic-d{depth}")
        assert len(items) == 50
        for item in items:
            assert item["difficulty"] == depth
            problem = Problem.model_validate(as_problem(item))
            assert asyncio.run(verifier.verify(problem, str(item["expected"]))).passed


def test_files_match_the_generator() -> None:
    for stem, items in build_all().items():
        assert (DATA_DIR / f"{stem}.jsonl").read_text("utf-8") == to_jsonl(items), stem


def test_list_datasets() -> None:
    names = {d.name: d for d in list_datasets()}
    assert set(names) >= {
        "game24-all",
        "game24-easy",
        "game24-hard",
        "arithmetic-d1",
        "arithmetic-d2",
        "arithmetic-d4",
        "arithmetic-d8",
    }
    assert names["game24-all"].size == 1362
    assert names["arithmetic-d8"].task == "arithmetic"
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_cli_list_and_show() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    for name in ("game24-all", "game24-hard", "arithmetic-d4", "1362"):
        assert name in result.output
    # the aliases a batch may name are listed too, each in its own row
    names = {line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line}
    assert {"game24", "arithmetic", "arithmetic-d1", "arithmetic-d8"} <= names
    alias = runner.invoke(app, ["datasets", "show", "arithmetic", "--limit", "2"])
    assert alias.exit_code == 0, alias.output
    assert json.loads(alias.output.splitlines()[0]) == load_dataset("arithmetic-d1")[0]
    shown = runner.invoke(app, ["datasets", "show", "arithmetic-d2", "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.strip().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == load_dataset("arithmetic-d2")[0]
    missing = runner.invoke(app, ["datasets", "show", "nope"])
    assert missing.exit_code == 2
