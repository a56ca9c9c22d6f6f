"""Per-profile concurrency limits shared by every worker process.

A model profile's ``max_concurrency`` caps the requests in flight to that model across
the whole deployment, not per process: each HTTP request a provider sends first takes a
*slot* from a :class:`Limiter`::

    async with limiter.slot("gpt-small", 8):
        response = await client.post(...)

Two implementations:

* :class:`RedisLimiter` — a counting semaphore in Redis (the broker's Redis, under its
  own key prefix). Each profile is a sorted set ``{prefix}{profile}`` of holder ids
  scored by the time their lease expires (Redis server time, so worker clocks may
  differ). Taking a slot drops expired holders and adds this one if fewer than
  ``limit`` live holders remain, in one optimistic transaction (WATCH/MULTI/EXEC, so it
  needs no server-side scripting and runs on fakeredis too); a full semaphore is polled
  with short jittered sleeps. A holder renews its lease while its call runs, so a slow
  call keeps its slot, and a worker killed mid-call frees its slots when their lease
  runs out (``lease_s``, 30 s by default). Releasing is idempotent.
* :class:`LocalLimiter` — the same contract within one process, for the embedded mode
  (no Redis).

Redis is transport only: if it cannot be reached while a slot is taken, the call goes
ahead (with a logged warning) under the provider's per-process cap, rather than
failing paid work because the limiter's bookkeeping is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "ponder:sem:"
DEFAULT_LEASE_S = 30.0
# connections a process's limiter keeps to Redis (each command holds one for a round trip)
REDIS_CONNECTIONS = 32
_WARN_EVERY_S = 30.0


class Limiter(Protocol):
    """Hands out at most ``limit`` concurrent slots per ``name``."""

    def slot(self, name: str, limit: int) -> AbstractAsyncContextManager[None]:
        """Wait for a free slot of ``name`` (at most ``limit`` held at once) and hold it
        for the ``async with`` block."""
        ...

    async def aclose(self) -> None: ...


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"a concurrency limit must be at least 1, got {limit}")


# --- in-process ------------------------------------------------------------------------


class LocalLimiter:
    """In-process slots (the embedded mode): one ``asyncio.Semaphore`` per name and
    limit, on the event loop that first waits on it."""

    def __init__(self) -> None:
        self._semaphores: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._held: dict[str, int] = {}

    def held(self, name: str) -> int:
        """Slots of ``name`` held right now."""
        return self._held.get(name, 0)

    @contextlib.asynccontextmanager
    async def slot(self, name: str, limit: int) -> AsyncIterator[None]:
        _check_limit(limit)
        semaphore = self._semaphores.setdefault((name, limit), asyncio.Semaphore(limit))
        async with semaphore:
            self._held[name] = self._held.get(name, 0) + 1
            try:
                yield
            finally:
                self._held[name] -= 1

    async def aclose(self) -> None:
        return None


# --- Redis -----------------------------------------------------------------------------


class RedisLimiter:
    """A Redis-backed counting semaphore with lease expiry (see the module docs).

    ``client`` is a ``redis.asyncio.Redis``; the limiter closes it on :meth:`aclose`
    only when it created it (:meth:`from_url`). ``poll_s`` bounds the jittered sleep
    between attempts while a semaphore is full; ``renew_s`` (default ``lease_s / 3``) is
    how often a held slot's lease is extended.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = 0.05,
        renew_s: float | None = None,
        owns_client: bool = False,
    ) -> None:
        if lease_s <= 0 or poll_s <= 0:
            raise ValueError("lease_s and poll_s must be positive")
        self._redis = client
        self.prefix = prefix
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.renew_s = renew_s if renew_s is not None else lease_s / 3
        self._owns_client = owns_client
        self._holder_base = f"{socket.gethostname()}:{os.getpid()}"
        self._last_warning = -_WARN_EVERY_S
        self._script: Any = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        """A limiter on the Redis at ``url`` (e.g. the Celery broker URL)."""
        import redis.asyncio

        # Hundreds of calls in flight each take and renew a slot: with a pool that
        # refuses connections beyond its size they failed open ("too many connections")
        # and the limit stopped holding. This one makes a command wait for a connection.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=10,
            socket_connect_timeout=5,
            socket_timeout=5,
            health_check_interval=30,
        )
        client = redis.asyncio.Redis.from_pool(pool)
        return cls(client, owns_client=True, **kwargs)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()

    async def holders(self, name: str) -> list[str]:
        """The live (unexpired) holders of ``name``'s slots, for checks and debugging."""
        now_ms = await self._now_ms(self._redis)
        members = await self._redis.zrangebyscore(self.key(name), f"({now_ms}", "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    @contextlib.asynccontextmanager
    async def slot(self, name: str, limit: int) -> AsyncIterator[None]:
        _check_limit(limit)
        key = self.key(name)
        holder = f"{self._holder_base}:{uuid.uuid4().hex}"
        held = await self._acquire(key, holder, limit)
        # The renewer is asked to stop, never cancelled: cancelling a redis-py coroutine
        # in the middle of a command can leave its connection unusable (seen as a hang).
        # It starts only once the call has run for renew_s: most calls end before that,
        # and a process with hundreds of calls in flight then keeps no task per call.
        stop = asyncio.Event()
        renewer: asyncio.Future[None] | None = None

        def start_renewing() -> None:
            nonlocal renewer
            renewer = asyncio.ensure_future(self._renew_loop(key, holder, limit, stop))

        timer = (
            asyncio.get_running_loop().call_later(self.renew_s, start_renewing) if held else None
        )
        try:
            yield
        finally:
            stop.set()
            if timer is not None:
                timer.cancel()
            if renewer is not None:
                await asyncio.shield(renewer)
            if held:
                await asyncio.shield(self._release(key, holder))

    async def _acquire(self, key: str, holder: str, limit: int) -> bool:
        """Wait until ``holder`` holds a slot; False when Redis failed (fail open)."""
        delay = min(0.005, self.poll_s)
        while True:
            try:
                if await self.try_acquire(key, holder, limit):
                    return True
            except Exception as exc:  # Redis down: go ahead under the per-process cap
                if _is_redis_error(exc):
                    self._warn(key, exc)
                    return False
                raise
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.poll_s, delay * 2)

    async def try_acquire(self, key: str, holder: str, limit: int) -> bool:
        """One attempt: drop expired holders, then add (or, if it already holds a live
        slot, renew) ``holder`` if fewer than ``limit`` live holders remain. One atomic
        script on the server: however many callers race for the last slot, each attempt
        is one round trip (a WATCH/MULTI transaction made them retry each other)."""
        if self._script is None:
            self._script = self._redis.register_script(_ACQUIRE_LUA)
        lease_ms = int(self.lease_s * 1000)
        acquired = await self._script(keys=[key], args=[holder, limit, lease_ms])
        return bool(int(acquired))

    async def release(self, key: str, holder: str) -> None:
        """Give the slot back (idempotent: releasing twice, or an expired slot, is fine)."""
        await self._redis.zrem(key, holder)

    async def _release(self, key: str, holder: str) -> None:
        try:
            await self.release(key, holder)
        except Exception as exc:  # the lease runs out on its own
            if not _is_redis_error(exc):
                raise
            self._warn(key, exc)

    async def _renew_loop(self, key: str, holder: str, limit: int, stop: asyncio.Event) -> None:
        """Renew now, then every renew_s, until ``stop``."""
        first = True
        while True:
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.renew_s)
            first = False
            if stop.is_set():
                return
            try:
                renewed = await self.try_acquire(key, holder, limit)
            except Exception as exc:
                if not _is_redis_error(exc):
                    raise
                self._warn(key, exc)
                continue
            if not renewed:
                log.warning(
                    "concurrency slot %s of %s expired while its call was still running "
                    "(the event loop stalled for over %.0f s?) and the slots are taken; "
                    "the call goes on",
                    holder,
                    key,
                    self.lease_s,
                )

    @staticmethod
    async def _now_ms(conn: Any) -> int:
        seconds, micros = await conn.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _warn(self, key: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning(
                "concurrency limiter: Redis unavailable for %s (%s: %s); calls go ahead "
                "under the per-process limit only",
                key,
                type(exc).__name__,
                exc,
            )


# KEYS[1]: the semaphore's sorted set (holder -> lease expiry, in Redis server time, ms);
# ARGV: holder, limit, lease (ms). Returns 1 when the holder holds a slot now.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)


def shares_slots(broker_url: str) -> bool:
    """Whether workers on this broker share slots through Redis (else each process
    counts its own, as in the embedded mode)."""
    return broker_url.startswith(("redis://", "rediss://", "unix://"))


class SlotGauge:
    """How many slots of each name are held right now across the deployment, read from
    the Redis the workers' :class:`RedisLimiter` uses (blocking: for the API's threads).
    The client is made on first use and kept."""

    def __init__(
        self, broker_url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0
    ) -> None:
        self._url = broker_url
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._client: Any = None

    @property
    def shared(self) -> bool:
        """Whether there is a deployment-wide count to read (a Redis broker)."""
        return shares_slots(self._url)

    def held(self, names: list[str]) -> dict[str, int]:
        """Live slots held per name (0 for a name nobody holds). Raises ``RedisError`` or
        ``OSError`` when Redis cannot be reached; ``ValueError`` without a Redis broker."""
        if not self.shared:
            raise ValueError("slots are counted per process without a Redis broker")
        if not names:
            return {}
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout_s,
                socket_timeout=self._timeout_s,
            )
        seconds, micros = self._client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.zcount(f"{self.prefix}{name}", f"({now_ms}", "+inf")
        return {name: int(count) for name, count in zip(names, pipe.execute(), strict=True)}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def build_limiter(broker_url: str, *, prefix: str = DEFAULT_PREFIX) -> Limiter:
    """The limiter a worker process uses: Redis-backed when the broker is Redis (the
    same server, keys under ``prefix``), else in-process (the embedded mode)."""
    if shares_slots(broker_url):
        return RedisLimiter.from_url(broker_url, prefix=prefix)
    return LocalLimiter()


__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_PREFIX",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "SlotGauge",
    "build_limiter",
    "shares_slots",
]
