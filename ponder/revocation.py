"""Telling every API process at once that an API key was revoked, over Redis pub/sub.

API processes cache verified keys for a few seconds (``PONDER_AUTH_CACHE_SECONDS``) and
keep event streams open for minutes. When a key is revoked (``DELETE /v1/keys/{id}`` or
``ponder keys revoke``), whoever revoked it publishes the key's SHA-256 hash on the
channel :func:`channel` names, on the broker's Redis. Every API process subscribes with
a :class:`RevocationListener`: it drops the key from its cache and closes the key's event
streams at once.

Pub/sub delivers only to those listening at that moment, so a listener reports every
(re)subscription (``on_resync``): the process then forgets every key it cached and
re-checks its open streams, as a revocation may have been missed while it was
disconnected. While Redis is unreachable, revocation still takes effect, only later: on
the cache's expiry (5 s by default), and for streams at their next periodic re-check.

In the embedded mode (a ``filesystem://`` broker) there is no Redis: the API revokes
locally at once, and a key revoked by ``ponder keys revoke`` in another process is
refused once that cache entry expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# how often a listener pings Redis, and how long it waits for an answer before it
# reconnects (a connection can die without an error, e.g. when a network path drops)
PING_SECONDS = 5.0
SILENCE_SECONDS = 3 * PING_SECONDS
RECONNECT_SECONDS = 1.0
_TIMEOUT_SECONDS = 2.0
# how long one wait for a message lasts (a stopped listener ends within it)
_WAIT_SECONDS = 0.5
# what a message carries: a key's hex SHA-256 (anything else on the channel is ignored)
_KEY_HASH = re.compile(r"[0-9a-f]{64}")


def channel(queue: str) -> str:
    """The channel a deployment's revocations go to: one per deployment (its queue name),
    so deployments sharing a Redis keep to themselves."""
    return f"ponder:revoked-keys:{queue}"


def uses_redis(broker_url: str) -> bool:
    return broker_url.startswith(REDIS_SCHEMES)


def publish_revoked(broker_url: str, queue: str, key_hash: str) -> int | None:
    """Publish that the key whose hash is ``key_hash`` was revoked, on a connection of
    its own (for one-off callers: ``ponder keys revoke``). The number of processes that
    received it, or None when there is no Redis to publish on (the embedded mode).
    Raises ``redis.RedisError`` when Redis is unreachable."""
    publisher = RevocationPublisher(broker_url, queue)
    try:
        return publisher.publish(key_hash)
    finally:
        publisher.close()


class RevocationPublisher:
    """Publishes revocations on one kept connection (an API process revokes now and
    then; a new connection each time would cost its set-up round trips). Thread-safe:
    redis-py's client takes a connection from its pool for each command."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self.enabled = uses_redis(broker_url)
        self._url = broker_url
        self._channel = channel(queue)
        self._client: Any = None
        self._lock = threading.Lock()

    def publish(self, key_hash: str) -> int | None:
        """The number of processes that received it; None without Redis. Raises
        ``redis.RedisError`` when Redis is unreachable."""
        if not self.enabled:
            return None
        return int(self._redis().publish(self._channel, key_hash))

    def _redis(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(
                    self._url,
                    socket_connect_timeout=_TIMEOUT_SECONDS,
                    socket_timeout=_TIMEOUT_SECONDS,
                    retry_on_timeout=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


class RevocationListener:
    """Follows the revocation channel and hands what it hears to the event loop that
    started it: ``on_revoked(key_hash)`` for each revocation, ``on_resync()`` after each
    (re)subscription. Both run on that loop and must not block.

    It listens from a thread of its own with a blocking Redis client: a message is
    handed over as soon as it arrives, and stopping never depends on cancelling a
    redis-py coroutine mid-command (which redis-py may swallow, or which may leave the
    connection unusable)."""

    def __init__(
        self,
        broker_url: str,
        queue: str,
        *,
        on_revoked: Callable[[str], None],
        on_resync: Callable[[], None],
    ) -> None:
        self.enabled = uses_redis(broker_url)
        self._url = broker_url
        self._channel = channel(queue)
        self._on_revoked = on_revoked
        self._on_resync = on_resync
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = False
        # set while subscribed (tests and benchmarks wait for it)
        self.subscribed = threading.Event()

    def start(self) -> None:
        """Start listening; call on the event loop the callbacks should run on."""
        if not self.enabled or self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="ponder-key-revocations", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop listening. Returns at once; the thread ends within a second."""
        self._stop.set()
        self._thread = None

    def _run(self) -> None:
        import redis

        stop = self._stop
        warned = False
        while not stop.is_set():
            client = redis.Redis.from_url(
                self._url,
                socket_connect_timeout=_TIMEOUT_SECONDS,
                socket_timeout=SILENCE_SECONDS,
            )
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self._channel)
                self._follow(pubsub, stop)
            except Exception as exc:
                if stop.is_set():
                    break
                if not warned or self.connected:
                    log.warning(
                        "key revocations unavailable (%s: %s); revoked keys are refused "
                        "once the auth cache expires until Redis is back; retrying",
                        type(exc).__name__,
                        exc,
                    )
                warned = True
            finally:
                self.connected = False
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    pubsub.close()
                with contextlib.suppress(Exception):
                    client.close()
            stop.wait(RECONNECT_SECONDS)

    def _follow(self, pubsub: Any, stop: threading.Event) -> None:
        heard = pinged = time.monotonic()
        while not stop.is_set():
            message = pubsub.get_message(timeout=_WAIT_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                kind = message.get("type")
                if kind == "subscribe":
                    self.connected = True
                    self._hand_over(self._on_resync)
                    self.subscribed.set()
                elif kind == "message":
                    data = message.get("data")
                    key_hash = data.decode("ascii", "replace") if isinstance(data, bytes) else data
                    if isinstance(key_hash, str) and _KEY_HASH.fullmatch(key_hash.strip()):
                        self._hand_over(self._on_revoked, key_hash.strip())
            if now - heard > SILENCE_SECONDS:
                raise ConnectionError(f"no answer from Redis for {SILENCE_SECONDS:.0f} s")
            if now - pinged >= PING_SECONDS:
                pinged = now
                pubsub.ping()

    def _hand_over(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        try:
            if loop is not None:
                loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the app has stopped
            self._stop.set()
