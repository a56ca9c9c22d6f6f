"""Response bodies of ``/v1/batches`` and ``/v1/datasets`` (requests are
:class:`ponder.batches.spec.BatchSpec` and JSON Lines uploads). Built field by field from
the tables and from :mod:`ponder.report`, so no column leaks by accident."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas import FieldError, JobUsage, StoredObject
from ponder import outcome
from ponder.batches.spec import BatchBudget, JobDefaults, JobFilter
from ponder.datasets.catalog import BuiltinDataset
from ponder.jsonl import LineError
from ponder.jsonlimits import readable
from ponder.report import BatchFigures
from ponder.tables import Batch, Dataset


class BatchCounts(BaseModel):
    """How many items are in each status."""

    queued: int = Field(description="Waiting: not yet started by a worker.")
    running: int = Field(description="Being worked on.")
    completed: int = Field(description="Finished with an answer or a stop reason.")
    failed: int = Field(description="Ended by an error.")
    cancelled: int = Field(description="Cancelled (by you, or by the batch budget cap).")
    total: int = Field(description="All items of the batch.")


class BatchAccuracy(BaseModel):
    scored: int = Field(
        description="Items that ran to an end (completed or failed) and whose answer is "
        "checked by a verifier (their own, their task's, or `exact` against `expected`)."
    )
    verified: int = Field(description="Scored items whose answer passed the verifier.")
    rate: float | None = Field(description="verified / scored; null while nothing is scored.")


class BatchLatency(BaseModel):
    p50_seconds: float | None = Field(
        description="Median seconds from an item's start by a worker to its end (finished "
        "items); null before any finished."
    )
    p95_seconds: float | None = Field(description="95th percentile of the same.")


class StrategyFiguresPublic(BaseModel):
    """The figures of the items that ran one strategy on one model."""

    strategy: str = Field(description="Strategy name.")
    model: str = Field(description="Model profile name.")
    items: int = Field(description="Items with this strategy and model.")
    finished: int = Field(description="Of those, items in a final status.")
    accuracy: BatchAccuracy = Field(description="Accuracy over these items.")
    tokens: int = Field(description="Tokens they spent in total.")
    mean_tokens: float | None = Field(description="Tokens per finished item.")
    cost_usd: float = Field(description="US dollars they spent in total.")
    latency: BatchLatency = Field(description="Latency percentiles of these items.")


class BatchComparison(BaseModel):
    """A `from_jobs` re-run against the jobs it repeats (over re-run items that finished)."""

    items: int = Field(description="Re-run items that finished.")
    solved_before: int = Field(description="Their original jobs with a verified answer.")
    solved_after: int = Field(description="Re-run items with a verified answer.")
    improved: int = Field(description="Unsolved before, solved by the re-run.")
    regressed: int = Field(description="Solved before, not by the re-run.")
    tokens_before: int = Field(description="Tokens the original jobs spent.")
    tokens_after: int = Field(description="Tokens the re-runs spent.")
    cost_before_usd: float = Field(description="US dollars the original jobs spent.")
    cost_after_usd: float = Field(description="US dollars the re-runs spent.")


class BatchSummary(BaseModel):
    """A batch: what it runs, and how far it has got."""

    id: str = Field(description="The batch's id (a UUID).")
    status: str = Field(
        description="`queued` (no item started yet), `running`, `completed` (every item "
        "reached a final status) or `cancelled`."
    )
    source: str = Field(
        description="Where the items came from: `inline` (`items`), `upload` (JSON Lines), "
        "`dataset` or `from_jobs`."
    )
    dataset: str | None = Field(description="The dataset run, for a `dataset` batch.")
    from_jobs: JobFilter | None = Field(description="The filter, for a `from_jobs` batch.")
    defaults: JobDefaults = Field(description="The job fields shared by the items.")
    budget: BatchBudget | None = Field(description="The cap on the batch's total spend.")
    webhook_url: str | None = Field(description="Where `batch.completed` is sent.")
    metadata: StoredObject = Field(description="The batch's metadata, as given.")
    schedule_id: str | None = Field(description="The schedule that created it, if any.")
    fire_time: datetime | None = Field(description="The schedule fire time it runs for.")
    counts: BatchCounts = Field(description="How many items are in each status.")
    usage: JobUsage = Field(description="Totals over the items.")
    created_at: datetime = Field(description="When the batch was created (UTC).")
    cancelled_at: datetime | None = Field(description="When it was cancelled, if it was.")
    finished_at: datetime | None = Field(
        description="When its last item reached a final status (`batch.completed` was sent)."
    )

    @classmethod
    def fields_from(cls, batch: Batch, totals: dict[str, Any]) -> dict[str, Any]:
        usage = totals["usage"]
        return {
            "id": batch.id,
            "status": batch.status,
            "source": batch.source,
            "dataset": batch.dataset,
            "from_jobs": (
                JobFilter.model_validate(readable(batch.source_filter))
                if batch.source_filter
                else None
            ),
            "defaults": JobDefaults.model_validate(readable(batch.defaults or {})),
            "budget": BatchBudget.model_validate(batch.budget) if batch.budget else None,
            "webhook_url": batch.webhook_url,
            "metadata": batch.meta or {},
            "schedule_id": batch.schedule_id,
            "fire_time": batch.fire_time,
            "counts": BatchCounts.model_validate(totals["counts"]),
            "usage": JobUsage(
                **outcome.usage(
                    usage["tokens"], usage["calls"], usage["cost_usd"], usage["seconds"]
                )
            ),
            "created_at": batch.created_at,
            "cancelled_at": batch.cancelled_at,
            "finished_at": batch.finished_at,
        }

    @classmethod
    def from_row(cls, batch: Batch, totals: dict[str, Any]) -> BatchSummary:
        return cls(**cls.fields_from(batch, totals))


class BatchPublic(BatchSummary):
    """A batch with its figures: accuracy, latency, per strategy, before/after."""

    accuracy: BatchAccuracy = Field(
        description="Share of scored items whose answer passed the verifier."
    )
    latency: BatchLatency = Field(description="How long items took, start to end.")
    by_strategy: list[StrategyFiguresPublic] = Field(
        description="The same figures per strategy and model (items may differ)."
    )
    comparison: BatchComparison | None = Field(
        description="For a `from_jobs` batch: solved and tokens before vs after; else null."
    )

    @classmethod
    def build(cls, batch: Batch, figures: BatchFigures) -> BatchPublic:
        data = figures.as_json()
        totals = {"counts": data["counts"], "usage": data["usage"]}
        return cls(
            **cls.fields_from(batch, totals),
            accuracy=BatchAccuracy.model_validate(data["accuracy"]),
            latency=BatchLatency.model_validate(data["latency"]),
            by_strategy=[StrategyFiguresPublic.model_validate(g) for g in data["by_strategy"]],
            comparison=(
                BatchComparison.model_validate(data["comparison"]) if data["comparison"] else None
            ),
        )


class ItemError(BaseModel):
    """Why one item was not accepted."""

    line: int | None = Field(
        default=None, description="Its line number (1-based) in a JSON Lines upload."
    )
    index: int | None = Field(
        default=None,
        description="Its position (0-based) among the items (for uploads: among item lines).",
    )
    custom_id: str | None = Field(default=None, description="Its custom_id, if it had one.")
    detail: str = Field(description="What is wrong and how to fix it.")
    errors: list[FieldError] = Field(
        description="The invalid fields, located relative to the item."
    )

    @classmethod
    def from_error(cls, error: LineError) -> ItemError:
        return cls.model_validate(error.as_json())


class BatchCreated(BatchSummary):
    """The new batch, with what was accepted and what was not."""

    accepted: int = Field(description="Items accepted: one job each, run in item order.")
    rejected: int = Field(description="Items refused (listed in `item_errors`).")
    item_errors: list[ItemError] = Field(
        description="Why each refused item was refused (at most the first 1000)."
    )


class BatchesPublic(BaseModel):
    """One page of batches, newest first."""

    data: list[BatchSummary] = Field(description="The batches on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class DatasetPublic(BaseModel):
    """A dataset: problems to run as a batch (`"dataset": id or name`)."""

    id: str = Field(description="Its id: a UUID for uploads, the name for built-ins.")
    name: str = Field(description="Its name (unique among your datasets).")
    builtin: bool = Field(description="Shipped with Ponder (read-only, shared by everyone).")
    task: str | None = Field(description="The task family of a built-in dataset.")
    description: str = Field(description="What it holds.")
    size: int = Field(description="How many problems it holds.")
    created_at: datetime | None = Field(description="When it was uploaded (null: built-in).")

    @classmethod
    def from_row(cls, dataset: Dataset) -> DatasetPublic:
        return cls(
            id=dataset.id,
            name=dataset.name,
            builtin=False,
            task=None,
            description=dataset.description,
            size=dataset.item_count,
            created_at=dataset.created_at,
        )

    @classmethod
    def from_builtin(cls, dataset: BuiltinDataset) -> DatasetPublic:
        return cls(
            id=dataset.name,
            name=dataset.name,
            builtin=True,
            task=dataset.task,
            description=dataset.description,
            size=dataset.size,
            created_at=None,
        )


class DatasetItemPublic(BaseModel):
    id: str | None = Field(description="The item's id (becomes a batch item's custom_id).")
    problem: StoredObject = Field(description="The job problem, with `expected` if given.")


class DatasetDetail(DatasetPublic):
    """A dataset with one page of its problems."""

    items: list[DatasetItemPublic] = Field(description="Problems from `offset` on.")
    next_offset: int | None = Field(
        description="Pass as `offset` for the next problems; null after the last."
    )


class DatasetsPublic(BaseModel):
    """Your datasets (newest first), then the built-in ones (first page only)."""

    data: list[DatasetPublic] = Field(description="The datasets on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get more of your datasets; null on the last page."
    )


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with every ``$ref`` replaced by its definition, so it can
    be placed in an OpenAPI document on its own (for hand-documented request bodies)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return resolve({**target, **rest})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
