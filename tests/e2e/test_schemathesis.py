"""Property-based fuzzing of the live API with Schemathesis: every operation of the
API document the running server serves, every check, all four phases (the document's
examples, coverage of each constraint's edges, random fuzzing with valid and invalid
data, stateful sequences that follow the links between operations), against the real
processes: API, worker and simulated model, on Postgres and Redis.

It fails on any 5xx, any status, content type, header or body the document does not
declare, a request the document calls invalid that is accepted, and one it calls valid
that is refused (tests/e2e/schemathesis.toml lists the operations whose validity needs
more than a schema can say, where a 422 is a right answer too). JSON Lines bodies come
from tests/e2e/schemathesis_hooks.py, which also keeps every webhook on the machine.

Sized for CI (a few minutes), derandomized. A longer run, exploring with a seed:

    PONDER_FUZZ_MAX_EXAMPLES=1000 PONDER_FUZZ_SEED=7 pytest tests/e2e/test_schemathesis.py
"""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack import running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = "tests.e2e.schemathesis_hooks"
# cases per operation and phase
MAX_EXAMPLES = int(os.environ.get("PONDER_FUZZ_MAX_EXAMPLES", "150"))
# without a seed, the cases are derandomized: every run generates the same ones (the
# stateful phase still follows what the server answers); a seed explores other cases,
# the same ones for the same seed
SEED = os.environ.get("PONDER_FUZZ_SEED")
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]


@pytest.fixture
def runs_for_minutes() -> Iterator[None]:
    """This test runs minutes on purpose: dump the threads' stacks (pytest's
    ``faulthandler_timeout``, to find hangs) only once it runs far longer than planned."""
    faulthandler.cancel_dump_traceback_later()
    faulthandler.dump_traceback_later(max(1200, MAX_EXAMPLES * 3))
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.usefixtures("runs_for_minutes")
def test_schemathesis_finds_nothing_on_the_live_api(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    # PONDER_WEBHOOK_ALLOW_PRIVATE stays off: a webhook may reach no address here (the
    # hooks also rewrite every webhook URL to a host that does not resolve)
    env_overrides = {"PONDER_WEBHOOK_ALLOW_PRIVATE": "false"}
    with running_stack(pg_url, queue_name, tmp_path, env_overrides=env_overrides) as stack:
        key = stack.new_key("fuzz")
        report = tmp_path / "schemathesis.json"
        command = [
            *SCHEMATHESIS,
            "--config-file",
            str(CONFIG),
            "run",
            f"{stack.api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            # every check runs (all are on by default); naming them here with `--checks
            # all` would also override the per-operation exceptions in the config file
            "--max-examples",
            str(MAX_EXAMPLES),
            # no example database either way: nothing found in one run is replayed in
            # the next (derandomized runs keep none)
            *(
                ["--seed", SEED, "--generation-database", "none"]
                if SEED
                else ["--generation-deterministic"]
            ),
            # one at a time: deterministic, and Python 3.11's parser is not thread-safe
            # (Hypothesis parses lambdas' source while describing strategies)
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": HOOKS,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "NO_COLOR": "1",
        }
        run = subprocess.run(
            # run in tmp_path: whatever Hypothesis and Schemathesis keep on disk stays there
            command,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        output = run.stdout[-30_000:] + run.stderr[-5_000:]
        assert report.exists(), output
        result: dict[str, Any] = json.loads(report.read_text())
        print(_summary(result))
        assert run.returncode == 0, output
        assert result["complete"] and not result["failures"] and not result["errors"], output
        operations = result["operations"]
        assert operations["tested"] == operations["total"] >= 32, operations
        assert all(p["status"] == "success" for p in result["phases"].values()), result["phases"]
        # nothing the server hid from the client either: no unexpected error was logged
        api_log = (tmp_path / "api.log").read_text(errors="replace")
        assert "unhandled error" not in api_log, api_log[-20_000:]
        assert " 500 Internal Server Error" not in api_log


def _summary(result: dict[str, Any]) -> str:
    cases = result["test_cases"]
    return (
        f"schemathesis {result['schemathesis_version']}, seed {result['seed'] or 'none'}: "
        f"{result['operations']['tested']} operations, {cases['generated']} cases, "
        f"{cases['with_failures']} failing, {result['running_time']:.0f} s"
    )
