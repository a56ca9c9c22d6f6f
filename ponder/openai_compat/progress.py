"""A job's events as one line of text each, for the progress streams show while the
job searches (Chat Completions chunks, the Responses reasoning summary)."""

from __future__ import annotations

import json
from typing import Any

from ponder.tables import JobStatus

# longest line; longer ones are cut
MAX_LINE_CHARS = 300
# the most lines of progress a response shows (its reasoning summary)
MAX_PROGRESS_LINES = 500


def is_progress(kind: str) -> bool:
    """Whether an event of ``kind`` is progress (the final ones are told apart)."""
    return kind not in JobStatus.ALL


def describe(kind: str, data: dict[str, Any]) -> str:
    """One line saying what an event of a job means."""
    line = _describe(kind, data if isinstance(data, dict) else {})
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."


def _answer(data: dict[str, Any]) -> str:
    answer = data.get("answer")
    score = data.get("score")
    scored = f", score {score:.2f}" if isinstance(score, int | float) else ""
    passed = data.get("passed", data.get("verified"))
    checked = "" if passed is None else (", verified" if passed else ", not verified")
    return f"{answer if answer is not None else 'no answer'}{scored}{checked}"


def _describe(kind: str, data: dict[str, Any]) -> str:
    if kind == "started":
        return "started"
    if kind == "resumed":
        return f"resumed after an interruption (attempt {data.get('attempt', '?')})"
    if kind == "phase":
        details = ", ".join(f"{k} {v}" for k, v in data.items() if k != "phase")
        return f"phase {data.get('phase', '?')}" + (f" ({details})" if details else "")
    if kind == "candidate":
        return f"candidate {data.get('index', '?')}: {_answer(data)}"
    if kind == "best":
        return f"best so far: {_answer(data)}"
    if kind == "round":
        return f"round {data.get('round', '?')}: {_answer(data)}"
    if kind == "vote":
        return f"vote after {data.get('samples', '?')} samples: leader {data.get('leader')}"
    if kind == "node":
        return f"search node {data.get('id', '?')} at depth {data.get('depth', '?')}"
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{kind}: {compact}"
