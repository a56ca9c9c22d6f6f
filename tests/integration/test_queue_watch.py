"""The reaper's watch over the broker queue, on real Postgres and Redis: a queue the
broker lost is re-published at once (at each job's priority), and nothing is sent twice
when nothing was lost. "Losing" the queue here deletes this test's own keys (its lists
and marker), never anything else on the shared Redis."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ponder.config import Settings
from ponder.localproc import free_port
from ponder.tables import Job, utcnow
from tests.api_helpers import api_client, auth_headers, job_body, queued_job_ids
from tests.jobs_helpers import create_job, load_job
from worker.celery_app import Dispatcher, broker_options, create_celery
from worker.celery_tasks import create_worker_app
from worker.queue_watch import QueueWatch, WatchReport, job_id_of, queue_keys, watch_for
from worker.reaper import reap_once
from worker.runner import WorkerServices

pytestmark = pytest.mark.integration


class Recorder:
    """A ``Publish`` that sends for real and remembers what it sent."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.sent: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, job_id: str, priority: int) -> bool:
        with self._lock:
            self.sent.append((job_id, priority))
        return self.dispatcher.publish(job_id, priority)


@pytest.fixture
def r(pg_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(pg_settings.broker_url)
    yield client
    client.delete(
        f"ponder:queue-marker:{pg_settings.queue}", f"ponder:queue-check:{pg_settings.queue}"
    )
    client.close()


@pytest.fixture
def api(pg_settings: Settings) -> Iterator[TestClient]:
    with api_client(pg_settings) as c:
        yield c


@pytest.fixture
def svc(pg_settings: Settings) -> Iterator[WorkerServices]:
    services = WorkerServices(pg_settings)
    yield services
    services.close()


@pytest.fixture
def publish(pg_settings: Settings) -> Iterator[Recorder]:
    app = create_celery(pg_settings)
    yield Recorder(Dispatcher(app, pg_settings.queue))
    app.close()


def new_watch(settings: Settings, settle_seconds: float = 0.0) -> QueueWatch:
    url, options = broker_options(settings.broker_url)
    return QueueWatch(
        redis.Redis.from_url(url), settings.queue, options, settle_seconds=settle_seconds
    )


@pytest.fixture
def watch(pg_settings: Settings) -> Iterator[QueueWatch]:
    w = new_watch(pg_settings)
    yield w
    w.close()


def submit(api: TestClient, headers: dict[str, str], n: int, **fields: Any) -> list[str]:
    ids = []
    for seed in range(n):
        resp = api.post("/v1/jobs", headers=headers, json=job_body(seed=seed, **fields))
        assert resp.status_code == 202, resp.text
        ids.append(str(resp.json()["id"]))
    return ids


def lose_queue(settings: Settings, client: redis.Redis) -> None:
    """What a FLUSHALL does to this test's queue: its lists and the marker are gone."""
    _, options = broker_options(settings.broker_url)
    client.delete(*queue_keys(settings.queue, options), f"ponder:queue-marker:{settings.queue}")


def settle(watch: QueueWatch, svc: WorkerServices, publish: Recorder) -> None:
    """Run the second look a first inventory asks for, until the marker is clean."""
    second = watch.tick(svc.sessions, publish)
    assert second.checked and second.error is None
    assert watch.tick(svc.sessions, publish) == WatchReport()


def marker(settings: Settings, client: redis.Redis) -> dict[str, Any] | None:
    raw = client.get(f"ponder:queue-marker:{settings.queue}")
    return None if raw is None else dict(json.loads(raw))


def test_the_watch_names_the_lists_kombu_really_uses(
    pg_settings: Settings, r: redis.Redis, publish: Recorder, watch: QueueWatch
) -> None:
    # one job at every priority through the real Celery/kombu publish path
    sent = {f"job-{p}": p for p in range(10)}
    for job_id, priority in sent.items():
        assert publish(job_id, priority)
    _, options = broker_options(pg_settings.broker_url)
    keys = queue_keys(pg_settings.queue, options)
    existing = {k.decode() for k in r.scan_iter(f"{pg_settings.queue}*")}
    assert existing <= set(keys) and len(existing) == 10
    assert watch.job_ids_in_broker(r) == set(sent)
    # the raw message is Celery's protocol 2 as kombu stores it
    assert job_id_of(json.loads(r.lindex(pg_settings.queue + ":9", 0) or b"{}")) == "job-0"


def test_a_lost_queue_is_republished_at_once_at_each_priority(
    pg_settings: Settings,
    api: TestClient,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
    watch: QueueWatch,
) -> None:
    headers = auth_headers(api)
    normal = submit(api, headers, 3)
    urgent = submit(api, headers, 2, priority=7)
    assert watch.tick(svc.sessions, publish).republished == 0  # a fresh watch: all there
    settle(watch, svc, publish)
    lose_queue(pg_settings, r)
    assert queued_job_ids(pg_settings) == []

    report = watch.tick(svc.sessions, publish)

    assert report == WatchReport(checked=True, republished=5)
    assert publish.sent == [(j, 7) for j in urgent] + [(j, 0) for j in normal]
    assert sorted(queued_job_ids(pg_settings)) == sorted(normal + urgent)  # each once
    # the second look finds them all there: nothing more is sent
    settle(watch, svc, publish)
    assert len(publish.sent) == 5
    assert sorted(queued_job_ids(pg_settings)) == sorted(normal + urgent)


def test_marker_present_nothing_is_published_even_if_the_lists_are_short(
    pg_settings: Settings,
    api: TestClient,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
    watch: QueueWatch,
) -> None:
    submit(api, auth_headers(api), 2)
    watch.tick(svc.sessions, publish)
    settle(watch, svc, publish)
    assert (marker(pg_settings, r) or {})["recheck_before"] is None
    _, options = broker_options(pg_settings.broker_url)
    r.delete(*queue_keys(pg_settings.queue, options))  # lost, but the marker survived

    assert watch.tick(svc.sessions, publish) == WatchReport()  # one GET: no inventory
    assert publish.sent == []
    assert queued_job_ids(pg_settings) == []


def test_marker_missing_but_queue_intact_sends_no_duplicate_and_sets_the_marker(
    pg_settings: Settings,
    api: TestClient,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
    watch: QueueWatch,
) -> None:
    ids = submit(api, auth_headers(api), 4)
    # a worker holds one of them, delivered but not yet acknowledged
    _, options = broker_options(pg_settings.broker_url)
    raw = r.rpop(queue_keys(pg_settings.queue, options)[9])
    assert isinstance(raw, bytes)
    held = json.loads(raw)
    held_id = job_id_of(held)
    assert held_id is not None
    r.hset("unacked", "test-tag-" + pg_settings.queue, json.dumps([held, "", pg_settings.queue]))
    try:
        assert marker(pg_settings, r) is None  # a beat starting fresh

        first = watch.tick(svc.sessions, publish)

        assert first == WatchReport(checked=True, republished=0)
        assert (marker(pg_settings, r) or {})["recheck_before"] is not None
        settle(watch, svc, publish)
        assert publish.sent == []
        assert sorted([*queued_job_ids(pg_settings), held_id]) == sorted(ids)
    finally:
        r.hdel("unacked", "test-tag-" + pg_settings.queue)


def test_a_message_a_real_worker_holds_unacknowledged_counts_as_present(
    pg_settings: Settings, r: redis.Redis, publish: Recorder, watch: QueueWatch
) -> None:
    app = create_worker_app(pg_settings)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            # a countdown keeps it in the worker's hands, off the lists, until then
            publish.dispatcher.enqueue("job-held", countdown=120)
            deadline = time.monotonic() + 30
            while queued_job_ids(pg_settings) or not any(
                json.loads(value)[2] == pg_settings.queue for value in r.hvals("unacked")
            ):
                assert time.monotonic() < deadline, "the worker never took the message"
                time.sleep(0.05)
            assert watch.job_ids_in_broker(r) == {"job-held"}
    finally:
        app.ponder_services.close()  # type: ignore[attr-defined]
        _, options = broker_options(pg_settings.broker_url)
        r.delete(*queue_keys(pg_settings.queue, options))  # restored there at shutdown


def test_only_the_jobs_without_a_message_are_republished(
    pg_settings: Settings,
    api: TestClient,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
    watch: QueueWatch,
) -> None:
    present = submit(api, auth_headers(api), 2)
    # published before the loss, their messages gone (and one between two slices)
    lost = [create_job(pg_settings), create_job(pg_settings)]
    with svc.sessions() as s, s.begin():
        s.execute(
            update(Job).where(Job.id.in_(lost)).values(enqueued_at=utcnow() - timedelta(seconds=30))
        )
        s.execute(update(Job).where(Job.id == lost[1]).values(status="running", slices=1))
    never = create_job(pg_settings)  # never enqueued: the regular pass's, not the watch's

    report = watch.tick(svc.sessions, publish)

    assert report.republished == 2
    assert sorted(job_id for job_id, _ in publish.sent) == sorted(lost)
    assert sorted(queued_job_ids(pg_settings)) == sorted(present + lost)
    assert load_job(pg_settings, never).enqueued_at is None


def test_a_job_enqueued_just_before_the_check_gets_the_second_look(
    pg_settings: Settings,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
) -> None:
    watch = new_watch(pg_settings, settle_seconds=0.5)
    try:
        young = create_job(pg_settings)
        with svc.sessions() as s, s.begin():
            s.execute(update(Job).where(Job.id == young).values(enqueued_at=utcnow()))
        # too young to tell from a publish still in flight: left for the second look
        assert watch.tick(svc.sessions, publish) == WatchReport(checked=True, republished=0)
        second = WatchReport()
        deadline = utcnow() + timedelta(seconds=10)
        while not second.checked and utcnow() < deadline:
            second = watch.tick(svc.sessions, publish)
        assert second == WatchReport(checked=True, republished=1)
        assert publish.sent == [(young, 0)]
    finally:
        watch.close()


def test_held_batch_items_are_left_to_the_feeder(
    pg_settings: Settings,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
    watch: QueueWatch,
) -> None:
    settings = pg_settings.model_copy(update={"batch_max_in_flight": 2})
    items = [
        {"problem": {"task": "game24", "input": {"numbers": [1, 2, 3, n]}}} for n in range(1, 7)
    ]
    defaults = {"strategy": {"name": "best_of_n", "params": {"n": 2}}, "model": "sim"}
    with api_client(settings) as api:
        resp = api.post(
            "/v1/batches", headers=auth_headers(api), json={"items": items, "defaults": defaults}
        )
        assert resp.status_code == 202, resp.text
        fed = queued_job_ids(settings)
        assert len(fed) == 2
        long_ago = utcnow() - timedelta(seconds=30)
        with svc.sessions() as s, s.begin():  # fed and held alike, old enough for any cutoff
            s.execute(update(Job).values(enqueued_at=long_ago))
        lose_queue(settings, r)

        report = watch.tick(svc.sessions, publish)

        assert report.republished == 2
        assert sorted(job_id for job_id, _ in publish.sent) == sorted(fed)
        with svc.sessions() as s:
            held = (
                s.execute(select(Job).where(Job.batch_id == resp.json()["id"], Job.held))
                .scalars()
                .all()
            )
        assert len(held) == 4
        assert all(job.enqueued_at == long_ago for job in held)


def test_two_reapers_at_once_send_each_lost_job_once(
    pg_settings: Settings,
    api: TestClient,
    r: redis.Redis,
    svc: WorkerServices,
    publish: Recorder,
) -> None:
    ids = submit(api, auth_headers(api), 6)
    lose_queue(pg_settings, r)
    watches = [new_watch(pg_settings) for _ in range(4)]
    barrier = threading.Barrier(len(watches))
    reports: list[WatchReport] = []

    def one(w: QueueWatch) -> None:
        barrier.wait()
        reports.append(w.tick(svc.sessions, publish))

    threads = [threading.Thread(target=one, args=(w,)) for w in watches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in watches:
        w.close()

    assert sum(rep.republished for rep in reports) == 6
    assert sorted(job_id for job_id, _ in publish.sent) == sorted(ids)
    assert sorted(queued_job_ids(pg_settings)) == sorted(ids)


def test_unreachable_redis_is_one_line_and_the_next_tick_checks(
    pg_settings: Settings, svc: WorkerServices, publish: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    closed = pg_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    watch = QueueWatch.for_settings(closed)
    try:
        with caplog.at_level(logging.WARNING, logger="worker.queue_watch"):
            report = watch.tick(svc.sessions, publish)
        assert report.error is not None and not report.checked
        [record] = [rec for rec in caplog.records if rec.name == "worker.queue_watch"]
        assert record.exc_info is None and "next tick" in record.getMessage()
    finally:
        watch.close()


def test_the_reaper_reports_a_lost_queue_at_default_settings(
    pg_settings: Settings, api: TestClient, r: redis.Redis
) -> None:
    defaults = Settings()
    settings = pg_settings.model_copy(
        update={
            "requeue_after_seconds": defaults.requeue_after_seconds,
            "reaper_interval_seconds": defaults.reaper_interval_seconds,
        }
    )
    svc = WorkerServices(settings)
    app = create_celery(settings)
    dispatcher = Dispatcher(app, settings.queue)
    try:
        ids = submit(api, auth_headers(api), 3)
        with svc.sessions() as s, s.begin():  # published a while ago, past the settling time
            s.execute(update(Job).values(enqueued_at=utcnow() - timedelta(seconds=30)))
        first = reap_once(svc, dispatcher)  # the process's own watch, as the reap task uses
        assert first["queue_checked"] and not first["queue_lost"]
        assert (first["republished"], first["requeued"]) == (0, 0)
        lose_queue(settings, r)

        report = reap_once(svc, dispatcher)

        assert report["queue_lost"] and (report["republished"], report["requeued"]) == (3, 0)
        assert sorted(queued_job_ids(settings)) == sorted(ids)
    finally:
        watch_for(settings).close()
        app.close()
        svc.close()
