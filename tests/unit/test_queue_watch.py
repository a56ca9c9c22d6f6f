"""The queue watch without services: the embedded mode (filesystem broker) is a no-op,
and the broker's message format and key names are read as kombu writes them."""

from __future__ import annotations

import base64
import json
from typing import Any

from kombu.transport.redis import Channel

from ponder.config import Settings
from tests.jobs_helpers import create_job
from worker.celery_app import RUN_JOB, Dispatcher, create_celery
from worker.queue_watch import QueueWatch, WatchReport, job_id_of, queue_keys
from worker.reaper import reap_once
from worker.runner import WorkerServices


def message(task: str, args: list[Any]) -> dict[str, Any]:
    body = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    return {
        "body": body,
        "headers": {"task": task},
        "properties": {"body_encoding": "base64", "priority": 9},
    }


def test_job_ids_are_read_from_run_job_messages_only() -> None:
    assert job_id_of(message(RUN_JOB, ["j-1"])) == "j-1"
    assert job_id_of(message("ponder.reap", [])) is None
    assert job_id_of(message(RUN_JOB, [])) is None
    assert job_id_of({"headers": {"task": RUN_JOB}, "body": "not base64!"}) is None
    assert job_id_of("garbage") is None


def test_queue_keys_follow_the_transport_options() -> None:
    assert queue_keys("q", {"priority_steps": list(range(10)), "sep": ":"}) == [
        "q",
        *(f"q:{step}" for step in range(1, 10)),
    ]
    # kombu's own defaults when the options leave them out
    assert queue_keys("q", {}) == [
        "q" if not step else f"q{Channel.sep}{step}" for step in Channel.priority_steps
    ]


def test_the_embedded_mode_has_no_queue_to_watch(sqlite_settings: Settings) -> None:
    watch = QueueWatch.for_settings(sqlite_settings)
    assert not watch.enabled
    svc = WorkerServices(sqlite_settings)
    app = create_celery(sqlite_settings)
    try:
        create_job(sqlite_settings)
        assert watch.tick(svc.sessions, lambda job_id, priority: True) == WatchReport()
        report = reap_once(svc, Dispatcher(app, sqlite_settings.queue))  # the process's watch
        assert (report["queue_checked"], report["queue_lost"], report["republished"]) == (
            False,
            False,
            0,
        )
        assert report["requeued"] == 1  # the regular pass still runs, through the file queue
    finally:
        app.close()
        svc.close()
