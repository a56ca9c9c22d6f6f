"""`ponder jobs` shows ids whole, so they can be pasted into `ponder show`."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ponder.cli import jobs_table

JOB: dict[str, Any] = {
    "id": "21da4815-6c1e-4b8e-9a0f-3f2b7c1d9e00",
    "status": "completed",
    "stop_reason": "budget_exhausted",
    "strategy": {"name": "tree_of_thoughts"},
    "usage": {"tokens": 123456},
    "result": {"answer": "(9 - (13 - 10)) * 4 and a long explanation after it", "verified": True},
}


def test_ids_are_whole_at_80_columns() -> None:
    console = Console(width=80, record=True)
    console.print(jobs_table([JOB, {**JOB, "id": "0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10"}]))
    text = console.export_text()
    assert "21da4815-6c1e-4b8e-9a0f-3f2b7c1d9e00" in text
    assert "0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10" in text
    assert "…" not in text.split("│")[1]  # nothing shortened in the id column
    assert max(len(line) for line in text.splitlines()) <= 80
