"""`ponder up` runs the whole stack in one terminal and stops it whole."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from ponder.localproc import free_port
from tests.conftest import REDIS_URL


@pytest.mark.e2e
def test_up_runs_a_job_and_stops_everything(pg_url: str, queue_name: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PONDER_DATABASE_URL": pg_url,
        "PONDER_BROKER_URL": REDIS_URL,
        "PONDER_QUEUE": queue_name,
        "NO_COLOR": "1",
    }
    args = ["up", "--port", str(port), "--processes", "1", "--max-jobs", "8"]
    up = subprocess.Popen(
        [sys.executable, "-m", "ponder", *args, "--allow-private-webhooks"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    assert up.stdout is not None
    stdout = up.stdout
    reader = threading.Thread(
        target=lambda: [lines.put(line.rstrip("\n")) for line in stdout], daemon=True
    )
    reader.start()

    def wait_for(text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line with {text!r} in:\n" + "\n".join(seen[-60:])
            try:
                seen.append(lines.get(timeout=remaining))
            except queue.Empty:
                continue

    try:
        wait_for("DEVELOPMENT MODE")  # the private-webhook switch is stated loudly
        wait_for("stop       Ctrl-C")  # the summary, once the API answers
        assert any(f"http://127.0.0.1:{port}" in line for line in seen)

        key = (
            subprocess.run(
                [sys.executable, "-m", "ponder", "keys", "create", "--tenant", "up-test"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        api = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        submitted = httpx.post(
            f"{api}/v1/jobs",
            json={
                "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
                "strategy": {"name": "best_of_n", "params": {"n": 4}},
            },
            headers=auth,
            timeout=10,
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        done = httpx.get(f"{api}/v1/jobs/{job['id']}?wait=60", headers=auth, timeout=70).json()
        assert done["status"] == "completed", done

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        reader.join(timeout=10)
        while not lines.empty():
            seen.append(lines.get())
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()

    for name in ("api", "worker", "beat"):
        assert any(line.startswith(f"{name:<6} |") for line in seen), name
    assert seen[-1].endswith("stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
