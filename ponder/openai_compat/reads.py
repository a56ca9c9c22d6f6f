"""What OpenAI's objects need from a job beyond its row: its answers ranked (for ``n``
choices), its tokens split into prompt, completion and reasoning (``usage``), and its
progress so far (stream events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ponder.openai_compat.progress import MAX_PROGRESS_LINES, describe, is_progress
from ponder.outcome import public_result
from ponder.tables import Job, JobEvent, JobStep

# event kinds that carry a candidate answer with its score (see the strategies)
ANSWER_EVENTS = ("candidate", "round", "best")
# the most events read to rank a job's answers
MAX_ANSWER_EVENTS = 5_000


@dataclass(frozen=True)
class Answer:
    text: str
    score: float
    verified: bool


def best_answer(job: Job) -> Answer | None:
    """The job's result (its best answer so far while it runs), if it has one."""
    result = public_result(job.result if job.result is not None else job.best)
    if result is None or result["answer"] is None:
        return None
    return Answer(str(result["answer"]), float(result["score"]), bool(result["verified"]))


def ranked_answers(session: Session, job: Job, n: int) -> list[Answer]:
    """Up to ``n`` distinct answers of the job, best first: its result, then the other
    candidates it scored (verified ones first, then by score, then in the order found)."""
    first = best_answer(job)
    answers = [first] if first is not None else []
    if n <= len(answers):
        return answers[:n]
    rows = session.execute(
        select(JobEvent.data)
        .where(JobEvent.job_id == job.id, JobEvent.kind.in_(ANSWER_EVENTS))
        .order_by(JobEvent.seq)
        .limit(MAX_ANSWER_EVENTS)
    ).scalars()
    return _rank(answers, rows, n)


def _rank(answers: list[Answer], events: Iterable[dict[str, Any]], n: int) -> list[Answer]:
    best: dict[str, tuple[Answer, int]] = {}
    for order, data in enumerate(events):
        text = data.get("answer") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text:
            continue
        score = data.get("score")
        candidate = Answer(
            text,
            float(score) if isinstance(score, int | float) else 0.0,
            bool(data.get("passed", data.get("verified", False))),
        )
        seen = best.get(text)
        if seen is None or _key(candidate) > _key(seen[0]):
            best[text] = (candidate, seen[1] if seen is not None else order)
    taken = {a.text for a in answers}
    others = sorted(
        (entry for entry in best.values() if entry[0].text not in taken),
        key=lambda entry: (-int(entry[0].verified), -entry[0].score, entry[1]),
    )
    return (answers + [entry[0] for entry in others])[:n]


def _key(answer: Answer) -> tuple[int, float]:
    return (int(answer.verified), answer.score)


@dataclass(frozen=True)
class Tokens:
    """A job's tokens as OpenAI reports them. ``total`` is the job's real spend (every
    call, including what a crash lost); ``prompt`` sums the prompts its calls sent,
    ``completion`` is the rest, ``reasoning`` the part of it models reported as
    reasoning."""

    prompt: int
    completion: int
    reasoning: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _usage_sums(session: Session, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    usage = JobStep.result["usage"]
    rows = session.execute(
        select(
            JobStep.job_id,
            func.coalesce(func.sum(usage["prompt_tokens"].as_integer()), 0),
            func.coalesce(func.sum(usage["reasoning_tokens"].as_integer()), 0),
        )
        .where(JobStep.job_id.in_(job_ids), JobStep.status == "done")
        .group_by(JobStep.job_id)
    ).all()
    return {str(job_id): (int(prompt), int(reasoning)) for job_id, prompt, reasoning in rows}


def split_tokens(total: int, prompt: int, reasoning: int) -> Tokens:
    prompt = min(max(prompt, 0), total)
    completion = total - prompt
    return Tokens(prompt, completion, min(max(reasoning, 0), completion))


def tokens_of(session: Session, job: Job) -> Tokens:
    """:class:`Tokens` of one job."""
    prompt, reasoning = _usage_sums(session, [job.id]).get(job.id, (0, 0))
    return split_tokens(int(job.usage_tokens), prompt, reasoning)


def tokens_of_many(session: Session, jobs: list[Job]) -> dict[str, Tokens]:
    """:class:`Tokens` of several jobs, in one query."""
    sums = _usage_sums(session, [job.id for job in jobs]) if jobs else {}
    return {job.id: split_tokens(int(job.usage_tokens), *sums.get(job.id, (0, 0))) for job in jobs}


def progress_lines(session: Session, job_id: str) -> list[str]:
    """The job's progress so far, one line per event (at most
    :data:`ponder.openai_compat.progress.MAX_PROGRESS_LINES`), as its stream shows it."""
    lines: list[str] = []
    after = 0
    while len(lines) < MAX_PROGRESS_LINES:
        rows = session.execute(
            select(JobEvent.seq, JobEvent.kind, JobEvent.data)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(MAX_PROGRESS_LINES)
        ).all()
        if not rows:
            break
        for seq, kind, data in rows:
            after = seq
            if is_progress(kind):
                lines.append(describe(kind, data))
    return lines[:MAX_PROGRESS_LINES]
