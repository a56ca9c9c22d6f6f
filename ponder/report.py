"""Batch figures: counts, usage, accuracy, latency percentiles, per-strategy breakdown
and, for re-runs of past jobs, before/after. Computed here only — ``GET
/v1/batches/{id}`` serves them and ``ponder report`` prints and plots what it serves.

Definitions:

- an item is *scored* when its answer can be checked: it has a verifier (its own, or its
  task's, or ``exact`` because the problem gives ``expected``) and it ran to an end
  (``completed`` or ``failed``; cancelled items are left out). *Accuracy* is the share of
  scored items whose answer passed the verifier.
- a strategy's *finished* items are those that ran to an end (an item cancelled before a
  worker started it did no work and is not counted); *tokens per item* is over them.
- *latency* of an item: from when a worker first started it to when it finished.
  Percentiles interpolate linearly between the nearest ranks.
- *before/after* (``from_jobs`` batches): over re-run items that finished, the original
  job's verified answers and tokens against the re-run's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ponder.tables import Job, JobStatus

_RAN = (JobStatus.COMPLETED, JobStatus.FAILED)
_CHUNK = 1000


@dataclass(frozen=True)
class Original:
    """The job a re-run item repeats, as it ended."""

    verified: bool
    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class ItemOutcome:
    """What one batch item did (finished or not)."""

    status: str
    strategy: str
    model: str
    scorable: bool
    verified: bool
    tokens: int
    calls: int
    cost_usd: float
    seconds: float
    latency_seconds: float | None
    original: Original | None = None
    # whether a worker ever started it (an item cancelled while waiting never was)
    started: bool = True


@dataclass(frozen=True)
class Accuracy:
    scored: int  # items that ran and have a verifier
    verified: int  # of those, items whose answer passed
    rate: float | None  # verified / scored; None when nothing is scored yet


@dataclass(frozen=True)
class Latency:
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class StrategyFigures:
    strategy: str
    model: str
    items: int
    finished: int
    accuracy: Accuracy
    tokens: int
    mean_tokens: float | None  # per finished item (one that ran to an end)
    cost_usd: float
    latency: Latency


@dataclass(frozen=True)
class Comparison:
    items: int  # re-run items that finished and whose original is still there
    solved_before: int
    solved_after: int
    improved: int  # unsolved before, solved after
    regressed: int  # solved before, unsolved after
    tokens_before: int
    tokens_after: int
    cost_before_usd: float
    cost_after_usd: float


@dataclass(frozen=True)
class BatchFigures:
    counts: dict[str, int]
    usage: dict[str, float]
    accuracy: Accuracy
    latency: Latency
    by_strategy: list[StrategyFigures]
    comparison: Comparison | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def is_scorable(problem: dict[str, Any], verifier: dict[str, Any] | None) -> bool:
    """Whether a job's answer gets checked: the same defaulting as the runner's verifier
    (a task's own verifier; free-form: ``exact`` when ``expected`` is given)."""
    if verifier is None:
        return problem.get("task") is not None or problem.get("expected") is not None
    return verifier.get("type") != "none"


def _accuracy(items: Iterable[ItemOutcome]) -> Accuracy:
    scored = [i for i in items if i.scorable and i.status in _RAN]
    verified = sum(1 for i in scored if i.verified)
    return Accuracy(len(scored), verified, verified / len(scored) if scored else None)


def _latency(items: Iterable[ItemOutcome]) -> Latency:
    values = [
        i.latency_seconds
        for i in items
        if i.latency_seconds is not None and i.status in JobStatus.TERMINAL
    ]
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return Latency(None if p50 is None else round(p50, 3), None if p95 is None else round(p95, 3))


def summarize(items: Sequence[ItemOutcome]) -> BatchFigures:
    """Every figure of a batch from its items' outcomes (pure)."""
    counts = dict.fromkeys(JobStatus.ALL, 0)
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    counts["total"] = len(items)
    usage = {
        "tokens": sum(i.tokens for i in items),
        "calls": sum(i.calls for i in items),
        "cost_usd": round(sum(i.cost_usd for i in items), 8),
        "seconds": round(sum(i.seconds for i in items), 3),
    }
    groups: dict[tuple[str, str], list[ItemOutcome]] = {}
    for item in items:
        groups.setdefault((item.strategy, item.model), []).append(item)
    by_strategy = []
    for (strategy, model), group in sorted(groups.items()):
        # items that ran to an end; one cancelled before it started did no work
        finished = [i for i in group if i.status in JobStatus.TERMINAL and i.started]
        tokens = sum(i.tokens for i in group)
        by_strategy.append(
            StrategyFigures(
                strategy=strategy,
                model=model,
                items=len(group),
                finished=len(finished),
                accuracy=_accuracy(group),
                tokens=tokens,
                mean_tokens=(
                    round(sum(i.tokens for i in finished) / len(finished), 1) if finished else None
                ),
                cost_usd=round(sum(i.cost_usd for i in group), 8),
                latency=_latency(group),
            )
        )
    return BatchFigures(
        counts=counts,
        usage=usage,
        accuracy=_accuracy(items),
        latency=_latency(items),
        by_strategy=by_strategy,
        comparison=_compare(items),
    )


def _compare(items: Sequence[ItemOutcome]) -> Comparison | None:
    reruns = [i for i in items if i.original is not None]
    if not reruns:
        return None
    done = [i for i in reruns if i.status in JobStatus.TERMINAL]
    before = [i.original for i in done if i.original is not None]
    return Comparison(
        items=len(done),
        solved_before=sum(1 for o in before if o.verified),
        solved_after=sum(1 for i in done if i.verified),
        improved=sum(1 for i in done if i.verified and i.original and not i.original.verified),
        regressed=sum(1 for i in done if not i.verified and i.original and i.original.verified),
        tokens_before=sum(o.tokens for o in before),
        tokens_after=sum(i.tokens for i in done),
        cost_before_usd=round(sum(o.cost_usd for o in before), 8),
        cost_after_usd=round(sum(i.cost_usd for i in done), 8),
    )


# ---------------------------------------------------------------- from the database


def _verified(result: dict[str, Any] | None) -> bool:
    return bool(result and result.get("verified"))


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def load_outcomes(session: Session, batch_id: str) -> list[ItemOutcome]:
    """The outcomes of every item of a batch, in item order."""
    rows = session.execute(
        select(
            Job.status,
            Job.strategy,
            Job.model,
            Job.problem,
            Job.verifier,
            Job.result,
            Job.usage_tokens,
            Job.usage_calls,
            Job.usage_cost_usd,
            Job.usage_seconds,
            Job.started_at,
            Job.finished_at,
            Job.original_job_id,
        )
        .where(Job.batch_id == batch_id)
        .order_by(Job.item_index)
    ).all()
    wanted = [r.original_job_id for r in rows if r.original_job_id]
    originals: dict[str, Original] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for job_id, result, tokens, cost in session.execute(
            select(Job.id, Job.result, Job.usage_tokens, Job.usage_cost_usd).where(
                Job.id.in_(chunk)
            )
        ):
            originals[str(job_id)] = Original(_verified(result), int(tokens), float(cost))
    return [
        ItemOutcome(
            status=r.status,
            strategy=str((r.strategy or {}).get("name", "")),
            model=r.model,
            scorable=is_scorable(r.problem or {}, r.verifier),
            verified=_verified(r.result),
            tokens=int(r.usage_tokens),
            calls=int(r.usage_calls),
            cost_usd=float(r.usage_cost_usd),
            seconds=float(r.usage_seconds),
            latency_seconds=(
                _seconds_between(r.started_at, r.finished_at)
                if r.status in JobStatus.TERMINAL
                else None
            ),
            original=originals.get(r.original_job_id) if r.original_job_id else None,
            started=r.started_at is not None,
        )
        for r in rows
    ]


def batch_figures(session: Session, batch_id: str) -> BatchFigures:
    return summarize(load_outcomes(session, batch_id))


# ---------------------------------------------------------------- the report command


@dataclass(frozen=True)
class ReportRow:
    """One line of ``ponder report``: one strategy (and model) of one batch."""

    batch_id: str
    label: str
    strategy: str
    model: str
    items: int
    finished: int
    accuracy: float | None
    scored: int
    tokens: int
    mean_tokens: float | None
    cost_usd: float
    p50_seconds: float | None
    p95_seconds: float | None


def report_rows(batches: Sequence[dict[str, Any]]) -> list[ReportRow]:
    """The table rows for batches as ``GET /v1/batches/{id}`` returns them."""
    rows = []
    for batch in batches:
        label = str((batch.get("metadata") or {}).get("name") or batch["id"][:8])
        for group in batch.get("by_strategy") or []:
            accuracy = group.get("accuracy") or {}
            latency = group.get("latency") or {}
            rows.append(
                ReportRow(
                    batch_id=batch["id"],
                    label=label,
                    strategy=group["strategy"],
                    model=group["model"],
                    items=int(group["items"]),
                    finished=int(group["finished"]),
                    accuracy=accuracy.get("rate"),
                    scored=int(accuracy.get("scored") or 0),
                    tokens=int(group["tokens"]),
                    mean_tokens=group.get("mean_tokens"),
                    cost_usd=float(group["cost_usd"]),
                    p50_seconds=latency.get("p50_seconds"),
                    p95_seconds=latency.get("p95_seconds"),
                )
            )
    return rows


def plot_accuracy_vs_tokens(rows: Sequence[ReportRow], out: str) -> int:
    """Write a PNG chart of accuracy against mean tokens per item, one labelled point per
    row that has both. Returns how many points were drawn."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.accuracy is not None and r.mean_tokens is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for r in points:
            assert r.mean_tokens is not None and r.accuracy is not None
            ax.scatter(r.mean_tokens, r.accuracy * 100, s=40)
            ax.annotate(
                f"{r.label} {r.strategy}",
                (r.mean_tokens, r.accuracy * 100),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
            )
        if points and max(p.mean_tokens or 0 for p in points) > 0:
            positive = [p.mean_tokens for p in points if p.mean_tokens]
            if positive and max(positive) / max(min(positive), 1e-9) > 20:
                ax.set_xscale("log")
        ax.set_xlabel("mean tokens per item")
        ax.set_ylabel("accuracy (% of scored items verified)")
        ax.set_ylim(-2, 102)
        ax.set_title("Accuracy vs compute")
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(
                0.5, 0.5, "no scored items yet", ha="center", va="center", transform=ax.transAxes
            )
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return len(points)
