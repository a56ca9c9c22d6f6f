"""Notice that the broker lost its queue and re-publish the jobs it took with it, within
a reaper tick or two instead of after ``requeue_after_seconds``.

Postgres knows which jobs wait for a message: queued or between two slices, nobody
holding their lease, not held back for the batch feeder. Redis only carries the
messages, so when it is flushed, restarted empty or failed over to a replica that missed
the last writes, those jobs wait for nothing. The reaper keeps a marker key beside the
queue holding the Redis server's run id; while it is there, from the same server run, a
tick costs one round trip. When it is missing (a flush, an empty restart, eviction, a
fresh deployment) or from another run (a restart that reloaded a snapshot, a
failover), the tick takes an inventory: the job ids of every message of the queue (all
its priority lists, and the messages workers hold unacknowledged) against the waiting
jobs in Postgres. Exactly the jobs without a message are re-published, at their
priority; a beat starting on an intact queue finds every job present and sends nothing.
An inventory reads the whole queue (in chunks), which is why only the marker starts one.

A job published while the inventory runs would look missing, so only jobs enqueued
``SETTLE_SECONDS`` before it count; the marker then asks for a second inventory, a tick
later, of everything enqueued before the loss was noticed. Each job is taken by an
``UPDATE`` that re-checks it still waits and was enqueued before the cutoff, so two
reapers never both send it, and a job claimed or re-enqueued meanwhile is left alone.

A message a worker had already taken off the list when Redis lost the rest (prefetched,
or waiting for its countdown) survives in that worker, so its job may get a second
message; that is harmless, since claims are fenced: whichever message comes second
finds the job leased or done.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from kombu.transport.redis import Channel as RedisChannel
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.orm import Session, sessionmaker

from ponder.batches.feeder import Publish
from ponder.config import Settings
from ponder.jobstore import jobs_waiting_for_a_message, release_unpublished, take_for_republish
from worker.celery_app import RUN_JOB, broker_options

log = logging.getLogger(__name__)

# Longest expected gap between a job's enqueued_at and its message reaching Redis (commit
# then publish, plus clock skew between hosts): younger jobs wait for the second look.
SETTLE_SECONDS = 2.0
# A watch whose inventory died (a worker killed mid-way) blocks the others this long.
LOCK_SECONDS = 30.0
_LRANGE_CHUNK = 1000

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class WatchReport:
    """One tick of the watch, for the reaper's report."""

    checked: bool = False  # an inventory ran
    republished: int = 0
    error: str | None = None

    @property
    def lost(self) -> bool:
        return self.republished > 0


@dataclass(frozen=True)
class _Marker:
    run: str  # the Redis server's run id when the marker was written ("" if unknown)
    # while set (epoch seconds): an inventory of the jobs enqueued before it is still due
    recheck_before: float | None = None

    def dumps(self) -> str:
        return json.dumps({"run": self.run, "recheck_before": self.recheck_before})

    @staticmethod
    def loads(raw: bytes | str | None) -> _Marker | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            recheck = data["recheck_before"]
            return _Marker(str(data["run"]), None if recheck is None else float(recheck))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as missing, which only costs an inventory


def queue_keys(queue: str, transport_options: Mapping[str, Any]) -> list[str]:
    """The Redis lists kombu's Redis transport keeps ``queue`` in, one per priority step:
    the bare name for step 0 and ``<queue><sep><step>`` for the others, as its
    ``Channel._q_for_pri`` names them."""
    steps = transport_options.get("priority_steps", RedisChannel.priority_steps)
    sep = transport_options.get("sep", RedisChannel.sep)
    return [f"{queue}{sep}{step}" if step else queue for step in sorted(set(steps))]


def job_id_of(message: Any) -> str | None:
    """The job id a ``run_job`` message carries, else None. Celery's protocol 2 puts the
    task name in the headers and ``[args, kwargs, embed]`` in the body, which kombu's
    Redis transport stores base64-encoded."""
    try:
        if message["headers"]["task"] != RUN_JOB:
            return None
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return str(json.loads(body)[0][0])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


# ---------------------------------------------------------------- the watch


class QueueWatch:
    """Whether the broker lost ``queue``, and the re-publishing when it did. ``client`` is
    None when the broker is not Redis (the embedded mode): every tick is then a no-op."""

    def __init__(
        self,
        client: redis.Redis | None,
        queue: str,
        transport_options: Mapping[str, Any] | None = None,
        *,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        options = transport_options or {}
        self._client = client
        self.queue = queue
        self.marker_key = f"ponder:queue-marker:{queue}"
        self._lock_key = f"ponder:queue-check:{queue}"
        self._lists = queue_keys(queue, options)
        self._unacked = str(options.get("unacked_key", RedisChannel.unacked_key))
        self._settle = settle_seconds
        # This process could not reach Redis or publish to it: something may have been
        # lost that the marker cannot show (a blip without data loss), so look next time.
        self._suspect = False

    @classmethod
    def for_settings(cls, settings: Settings) -> QueueWatch:
        if not settings.broker_url.startswith(_REDIS_SCHEMES):
            return cls(None, settings.queue)
        url, options = broker_options(settings.broker_url)
        # short timeouts: the reap task must not hang on a broker that is away
        client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
        return cls(client, settings.queue, options)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def suspect(self) -> None:
        """Take an inventory on this process's next tick (a publish just failed)."""
        self._suspect = True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def tick(self, sessions: sessionmaker[Session], publish: Publish) -> WatchReport:
        """Check the marker and, when the queue may have been lost, re-publish the waiting
        jobs it does not hold. A Redis that cannot be reached is logged in one line and
        checked again next tick; database errors propagate (the reap task reports them)."""
        if self._client is None:
            return WatchReport()
        try:
            return self._tick(self._client, sessions, publish)
        except (RedisError, OSError) as exc:
            self._suspect = True
            log.warning(
                "queue watch: broker unreachable, will check queue %s next tick: %s",
                self.queue,
                exc,
            )
            return WatchReport(error=f"broker unavailable: {exc}")

    def _tick(
        self, client: redis.Redis, sessions: sessionmaker[Session], publish: Publish
    ) -> WatchReport:
        with client.pipeline(transaction=False) as pipe:
            pipe.get(self.marker_key)
            pipe.info("server")
            raw, info = pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        # a server that refuses INFO leaves only the marker's presence to go by
        run = "" if isinstance(info, ResponseError) else str(info.get("run_id", ""))
        marker = _Marker.loads(raw)
        now = time.time()
        if marker is not None and marker.run == run and not self._suspect:
            if marker.recheck_before is None:
                return WatchReport()
            if now - self._settle < marker.recheck_before:
                return WatchReport()  # publishes from just before it may still land
            with self._locked(client) as mine:
                if not mine:
                    return WatchReport()
                sent = self._republish_missing(client, sessions, publish, marker.recheck_before)
                _compare_and_set(client, self.marker_key, raw, _Marker(run).dumps())
                return WatchReport(checked=True, republished=sent)
        # Lost, or unknown: recorded first, so that a loss during the inventory is seen
        # again next tick, and everything enqueued before now gets a second look.
        with self._locked(client) as mine:
            if not mine:
                return WatchReport()
            self._suspect = False
            client.set(self.marker_key, _Marker(run, recheck_before=now).dumps())
            if marker is None:
                why = "marker missing"
            elif marker.run != run:
                why = "Redis restarted or failed over"
            else:
                why = "this process lost touch with the broker"
            log.info(
                "queue watch: checking broker queue %s against the database (%s)", self.queue, why
            )
            sent = self._republish_missing(client, sessions, publish, now - self._settle)
            return WatchReport(checked=True, republished=sent)

    def _republish_missing(
        self,
        client: redis.Redis,
        sessions: sessionmaker[Session],
        publish: Publish,
        enqueued_before: float,
    ) -> int:
        # the broker first: a job enqueued after this inventory started is younger than
        # the cutoff, so it can never look missing
        present = self.job_ids_in_broker(client)
        cutoff = datetime.fromtimestamp(enqueued_before, UTC)
        waiting = jobs_waiting_for_a_message(sessions, enqueued_before=cutoff)
        missing = [(job_id, prio) for job_id, prio in waiting if job_id not in present]
        if not missing:
            log.info("queue watch: broker queue %s holds every waiting job", self.queue)
            return 0
        taken = take_for_republish(
            sessions, [job_id for job_id, _ in missing], enqueued_before=cutoff
        )
        sent: list[str] = []
        failed: list[str] = []
        for job_id, priority in missing:
            if job_id in taken:
                (sent if publish(job_id, priority) else failed).append(job_id)
        if failed:
            self._suspect = True
            release_unpublished(sessions, failed)
        if sent:
            log.warning(
                "queue watch: re-published %d job(s) missing from broker queue %s "
                "(Redis flushed, restarted or failed over)",
                len(sent),
                self.queue,
            )
        return len(sent)

    def job_ids_in_broker(self, client: redis.Redis) -> set[str]:
        """Ids of the jobs with a message in the queue: waiting in one of its priority
        lists, or delivered to a worker and not yet acknowledged."""
        ids: set[str] = set()
        for key in self._lists:
            # Workers pop from the tail and producers push at the head, so reading from
            # the head in chunks can re-read an entry but never skips one still there.
            start = 0
            while True:
                chunk = client.lrange(key, start, start + _LRANGE_CHUNK - 1)
                ids.update(_ids(json.loads(item) for item in chunk))
                if len(chunk) < _LRANGE_CHUNK:
                    break
                start += _LRANGE_CHUNK
        # after the lists: a message taken off a list meanwhile is found here
        for _tag, value in client.hscan_iter(self._unacked, count=_LRANGE_CHUNK):
            try:
                message, _exchange, routing_key = json.loads(value)
            except (ValueError, TypeError):
                continue
            if routing_key == self.queue:
                ids.update(_ids([message]))
        return ids

    @contextmanager
    def _locked(self, client: redis.Redis) -> Iterator[bool]:
        """Yields whether this tick holds the inventory lock (another reaper may)."""
        token = uuid.uuid4().hex
        mine = bool(client.set(self._lock_key, token, nx=True, px=int(LOCK_SECONDS * 1000)))
        try:
            yield mine
        finally:
            if mine:
                _compare_and_set(client, self._lock_key, token.encode(), None)


def _compare_and_set(client: redis.Redis, key: str, expected: bytes, new: str | None) -> None:
    """Set (or delete, for None) ``key`` only if it still holds ``expected``: a flush or
    another reaper's write since then stands."""
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(key)  # type: ignore[no-untyped-call]  # unannotated in redis-py
            if pipe.get(key) != expected:
                return
            pipe.multi()
            if new is None:
                pipe.delete(key)
            else:
                pipe.set(key, new)
            pipe.execute()
        except redis.WatchError:
            pass  # changed under us: theirs stands


def _ids(messages: Any) -> Iterator[str]:
    for message in messages:
        job_id = job_id_of(message)
        if job_id is not None:
            yield job_id


_watches: dict[tuple[str, str], QueueWatch] = {}
_watches_lock = threading.Lock()


def watch_for(settings: Settings) -> QueueWatch:
    """This process's watch of the settings' broker queue (one Redis client each)."""
    key = (settings.broker_url, settings.queue)
    with _watches_lock:
        watch = _watches.get(key)
        if watch is None:
            watch = _watches[key] = QueueWatch.for_settings(settings)
        return watch
