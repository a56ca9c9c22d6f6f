"""e2e fixtures: the whole service as separate processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack


@pytest.fixture
def stack(pg_url: str, queue_name: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(pg_url, queue_name, tmp_path) as s:
        yield s
