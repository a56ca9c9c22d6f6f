"""`ponder beat` leaves nothing behind in the temporary directory when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REDIS_URL


def test_beat_removes_its_state_on_sigterm(pg_url: str, queue_name: str, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "PONDER_DATABASE_URL": pg_url,
        "PONDER_BROKER_URL": REDIS_URL,
        "PONDER_QUEUE": queue_name,
    }
    log = tmp_path / "beat.log"
    with open(log, "wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "ponder", "beat"], env=env, stdout=out, stderr=out
        )
    try:
        # beat writes its schedule file as it starts; nothing else announces that
        deadline = time.monotonic() + 60
        while not [p for p in tmp.rglob("*") if p.is_file()]:
            assert beat.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        beat.send_signal(signal.SIGTERM)
        beat.wait(timeout=30)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
    assert list(tmp.iterdir()) == [], log.read_text(errors="replace")
