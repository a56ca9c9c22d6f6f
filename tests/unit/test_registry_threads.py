"""The first lookups after start-up may come from many threads at once (the API's thread
pool). None of them may see a half-filled registry: each run starts a fresh interpreter
and releases 32 threads together on empty registries."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import threading
from ponder.families import all_tasks
from ponder.verifiers import verifier_types
from strategies.registry import all_strategies

start = threading.Barrier(32)
seen = []

def look() -> None:
    start.wait()
    seen.append((len(all_strategies()), len(all_tasks()), verifier_types()))

threads = [threading.Thread(target=look) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(set(seen)))
"""


@pytest.mark.parametrize("run", range(3))
def test_concurrent_first_lookups_see_every_strategy_task_and_verifier(run: int) -> None:
    from ponder.families import all_tasks
    from ponder.verifiers import verifier_types
    from strategies.registry import all_strategies

    full = (len(all_strategies()), len(all_tasks()), verifier_types())
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == str([full]), out.stdout


def test_a_failing_loader_is_retried_and_reentry_returns() -> None:
    from ponder.once import Once

    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        once()  # a module imported by the loader looks something up: no deadlock
        if len(calls) == 1:
            raise RuntimeError("first try fails")

    once = Once(flaky)
    with pytest.raises(RuntimeError):
        once()
    once()
    once()
    assert len(calls) == 2
