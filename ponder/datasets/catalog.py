"""Datasets a batch can run: the tenant's uploads (``datasets`` + ``dataset_items``) and
the built-in ones shipped in :mod:`ponder.datasets` (plus the aliases ``game24`` = every
puzzle and ``arithmetic`` = every depth)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ponder import datasets as shipped
from ponder.families import all_tasks, get_task
from ponder.jsonl import LineError, parse_jsonl
from ponder.jsonlimits import storable_text, unstorable
from ponder.problem import Problem
from ponder.tables import Dataset, DatasetItem, new_id, utcnow

MAX_NAME_CHARS = 200
MAX_ITEM_KEY_CHARS = 200

# built-in names that stand for several shipped datasets
ALIASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "game24": (
        "game24",
        "Every solvable Game of 24 puzzle over 1..13 (= game24-all).",
        ("game24-all",),
    ),
    "arithmetic": (
        "arithmetic",
        "Every shipped arithmetic word problem, depths 1, 2, 4 and 8 "
        "(arithmetic-d1, -d2, -d4, -d8 in order).",
        tuple(f"arithmetic-d{d}" for d in shipped.ARITHMETIC_DEPTHS),
    ),
}


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str
    description: str
    size: int


@dataclass(frozen=True)
class DatasetEntry:
    key: str | None  # the item's own id, used as the batch item's custom_id
    problem: dict[str, Any]


@dataclass(frozen=True)
class ResolvedDataset:
    id: str  # the uploaded dataset's id, or the built-in name
    name: str
    entries: list[DatasetEntry]


def builtin_datasets() -> list[BuiltinDataset]:
    """Every built-in dataset, aliases first."""
    catalog = {d.name: d for d in shipped.list_datasets()}
    out = [
        BuiltinDataset(name, task, description, sum(catalog[p].size for p in parts))
        for name, (task, description, parts) in ALIASES.items()
    ]
    out.extend(BuiltinDataset(d.name, d.task, d.description, d.size) for d in catalog.values())
    return out


def builtin(name: str) -> BuiltinDataset | None:
    return next((d for d in builtin_datasets() if d.name == name), None)


def builtin_entries(name: str) -> list[DatasetEntry] | None:
    """The problems of built-in dataset ``name``, or None if there is none so named."""
    parts = ALIASES[name][2] if name in ALIASES else (name,)
    entries: list[DatasetEntry] = []
    for part in parts:
        try:
            items = shipped.load_dataset(part)
        except KeyError:
            return None
        entries.extend(
            DatasetEntry(str(item.get("id")), shipped.as_problem(item)) for item in items
        )
    return entries


def get_dataset(session: Session, tenant_id: str, ref: str) -> Dataset | None:
    """The tenant's uploaded dataset with id (or name) ``ref``; None also for another
    tenant's."""
    if storable_text(ref) is not None:
        return None  # no name holds NUL or a lone surrogate (they cannot be stored)
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    try:
        wanted = str(uuid.UUID(ref)) if len(ref) <= 64 else None
    except ValueError:
        wanted = None
    if wanted is not None:
        found = session.execute(query.where(Dataset.id == wanted)).scalar_one_or_none()
        if found is not None:
            return found
    return session.execute(query.where(Dataset.name == ref)).scalar_one_or_none()


def resolve(session: Session, tenant_id: str, ref: str) -> ResolvedDataset | None:
    """The problems of the dataset ``ref`` names: an uploaded dataset of the tenant (by
    id or name), else a built-in one. None if neither exists."""
    own = get_dataset(session, tenant_id, ref)
    if own is not None:
        rows = session.execute(
            select(DatasetItem.item_key, DatasetItem.problem)
            .where(DatasetItem.dataset_id == own.id)
            .order_by(DatasetItem.position)
        ).all()
        return ResolvedDataset(own.id, own.name, [DatasetEntry(r[0], r[1]) for r in rows])
    entries = builtin_entries(ref)
    if entries is None:
        return None
    return ResolvedDataset(ref, ref, entries)


def known_names(session: Session, tenant_id: str, limit: int = 20) -> str:
    """Dataset names to suggest in an error message."""
    own = session.execute(
        select(Dataset.name)
        .where(Dataset.tenant_id == tenant_id)
        .order_by(Dataset.created_at.desc())
        .limit(limit)
    ).scalars()
    names = [*own, *(d.name for d in builtin_datasets())]
    return ", ".join(names)


def parse_upload(
    text: str, *, max_line_bytes: int, max_items: int
) -> tuple[list[DatasetEntry], list[LineError]]:
    """A dataset upload's problems, or the errors of its bad lines (by line number).

    Each line is either ``{"problem": {...}, "expected": ..., "id": "..."}`` or a problem
    itself (``{"task", "input", "expected"?, "id"?, "difficulty"?}``, the format
    ``ponder datasets show`` prints); ``expected`` and ``id`` are optional."""
    lines, errors = parse_jsonl(text, max_line_bytes=max_line_bytes)
    entries: list[DatasetEntry] = []
    seen: dict[str, int] = {}
    for line in lines:
        try:
            entry = _entry(line.value)
        except ValueError as exc:
            errors.append(LineError(str(exc), line=line.number))
            continue
        if entry.key is not None:
            if entry.key in seen:
                errors.append(
                    LineError(
                        f"id {entry.key!r} was already used on line {seen[entry.key]}; "
                        "ids must be unique in a dataset",
                        line=line.number,
                    )
                )
                continue
            seen[entry.key] = line.number
        entries.append(entry)
    if len(entries) > max_items:
        errors.append(
            LineError(
                f"the upload has {len(entries)} problems; a dataset holds at most {max_items}"
            )
        )
    errors.sort(key=lambda e: e.line or 0)
    return entries, errors


def _entry(value: Any) -> DatasetEntry:
    if not isinstance(value, dict):
        raise ValueError(f"each line must be a JSON object, got {type(value).__name__}")
    data = dict(value)
    key = data.pop("id", None)
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_ITEM_KEY_CHARS):
        raise ValueError(f"id must be a string of 1 to {MAX_ITEM_KEY_CHARS} characters")
    unstorable_key = None if key is None else storable_text(key)
    if unstorable_key is not None:
        raise ValueError(f"id {unstorable_key}")
    if "problem" in data:
        problem = data.pop("problem")
        if not isinstance(problem, dict):
            raise ValueError("problem must be a JSON object")
        problem = dict(problem)
        if "expected" in data:
            problem["expected"] = data.pop("expected")
        data.pop("difficulty", None)
        if data:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(data))}; a line holds problem, expected and id"
            )
    else:
        data.pop("difficulty", None)  # kept by `ponder datasets show`; not part of a problem
        problem = data
    check_problem(problem)
    return DatasetEntry(key, problem)


def check_problem(problem: dict[str, Any]) -> None:
    """ValueError saying what is wrong if ``problem`` is not a valid job problem."""
    problem_at = unstorable(problem, where="problem")
    if problem_at is not None:
        raise ValueError(f"problem: {problem_at}")
    try:
        parsed = Problem.model_validate(problem)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        parts = []
        for error in first[:4]:
            loc = ".".join(str(p) for p in ("problem", *error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = (
                    "unknown field; a problem has task + input, or prompt / messages, and expected"
                )
            parts.append(f"{loc}: {message}")
        raise ValueError("; ".join(parts)) from None
    if parsed.task is not None:
        try:
            task = get_task(parsed.task)
        except KeyError:
            known = ", ".join(sorted(all_tasks()))
            raise ValueError(
                f"problem.task: unknown task {parsed.task!r}; known tasks: {known}"
            ) from None
        try:
            task.validate_input(parsed.input or {})
        except ValueError as exc:
            raise ValueError(f"problem.input: {exc}") from None


def create_dataset(
    session: Session, *, tenant_id: str, name: str, description: str, entries: list[DatasetEntry]
) -> Dataset:
    """Insert a dataset and its items in the caller's transaction."""
    dataset = Dataset(
        id=new_id(),
        tenant_id=tenant_id,
        name=name,
        description=description,
        item_count=len(entries),
        created_at=utcnow(),
    )
    session.add(dataset)
    session.flush()
    if entries:
        session.execute(
            insert(DatasetItem),
            [
                {"dataset_id": dataset.id, "position": i, "item_key": e.key, "problem": e.problem}
                for i, e in enumerate(entries)
            ],
        )
    return dataset


def count_datasets(session: Session, tenant_id: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Dataset).where(Dataset.tenant_id == tenant_id)
        ).scalar_one()
    )
