"""Small helpers: request bodies, uploads, path segments."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, TypeAlias
from urllib.parse import quote

from pydantic import BaseModel

# An upload: its bytes, the path of a file holding them, or an open binary file.
FileInput: TypeAlias = bytes | str | os.PathLike[str] | IO[bytes]


class NotGiven:
    """The default of a parameter that is left out of the request unless given (where
    ``None`` means something: ``end_time=None`` removes a schedule's end time)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: models keep only the fields that were set."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def body(fields: Mapping[str, Any], extra_body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON body of the fields given: ``None`` and :data:`NOT_GIVEN` are left out (the
    server's default applies), ``extra_body`` is merged last."""
    out = {
        name: jsonable(value)
        for name, value in fields.items()
        if value is not None and not isinstance(value, NotGiven)
    }
    if extra_body:
        out.update(jsonable(extra_body))
    return out


def patch_body(
    fields: Mapping[str, Any], extra_body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON body of the fields given, ``None`` included (it sets a field to null)."""
    out = {
        name: jsonable(value) for name, value in fields.items() if not isinstance(value, NotGiven)
    }
    if extra_body:
        out.update(jsonable(extra_body))
    return out


def params(**values: Any) -> dict[str, Any]:
    """Query parameters, without those not given."""
    return {name: value for name, value in values.items() if value is not None}


def segment(value: str) -> str:
    """An id as one path segment (a ``/`` in it cannot reach another path)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty id, got {value!r}")
    return quote(value, safe="")


def read_file(file: FileInput) -> bytes:
    """The bytes of an upload given as bytes, a path or an open binary file."""
    if isinstance(file, bytes):
        return file
    if isinstance(file, str | os.PathLike):
        return Path(file).read_bytes()
    data = file.read()
    if not isinstance(data, bytes):
        raise TypeError("open the file in binary mode ('rb')")
    return data


def jsonl(lines: Iterable[Mapping[str, Any] | BaseModel]) -> bytes:
    """JSON Lines of objects (one per line)."""
    return b"".join(
        json.dumps(jsonable(line), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for line in lines
    )
