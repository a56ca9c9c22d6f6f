"""One API process's view of the API keys: the cache of recently verified keys, the
keys revoked lately, and the open event streams of each key, so a revocation takes
effect at once here (see :mod:`ponder.revocation` for how it reaches every process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ponder.auth import KeyGrant, LastUsedThrottle

# how long a revoked key's hash is remembered (refused without a lookup); long enough to
# cover a verification that was in flight when the revocation arrived
_REVOKED_MEMORY_SECONDS = 300.0


class AuthCache:
    """Recently verified API keys (by hash), so busy clients do not cost a database
    lookup per request. Only successes are cached, for ``ttl`` seconds. A revocation
    drops its key at once (:meth:`drop`); the TTL is the fallback when the revocation
    cannot be heard (Redis down, or ``ponder keys revoke`` in the embedded mode). A new
    key works at once."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, KeyGrant]] = {}
        # bumped by every drop and clear: a lookup that began before one must not put
        # what it read, which may be older than the revocation
        self.epoch = 0

    def get(self, key_hash: str) -> KeyGrant | None:
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, grant: KeyGrant, epoch: int | None = None) -> None:
        """Cache ``grant``, unless the cache was dropped from since ``epoch`` (the
        :attr:`epoch` read before the lookup that found it)."""
        if self._ttl <= 0 or (epoch is not None and epoch != self.epoch):
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[grant.key_hash] = (time.monotonic() + self._ttl, grant)

    def drop(self, key_hash: str) -> None:
        self.epoch += 1
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()


@dataclass(eq=False)
class StreamWatch:
    """One open event stream of a key: ``wake`` is set when the stream should look at
    ``revoked`` (or re-check its key, ``recheck``)."""

    key_hash: str
    wake: asyncio.Event
    revoked: bool = False
    recheck: bool = False


@dataclass
class Keyring:
    """The process's key state. Revocations arrive through :meth:`revoked` (from this
    process's ``DELETE /v1/keys/{id}``, or from the Redis listener for other processes'),
    re-synchronizations through :meth:`resync`; both run on the event loop."""

    cache: AuthCache
    # which keys' last use is due to be written
    last_used: LastUsedThrottle = field(default_factory=LastUsedThrottle)
    _revoked: dict[str, float] = field(default_factory=dict)  # hash -> when heard
    _streams: dict[str, set[StreamWatch]] = field(default_factory=dict)

    def revoked(self, key_hash: str) -> None:
        """The key with this hash was revoked: refuse it from now on and close its
        streams."""
        now = time.monotonic()
        self.cache.drop(key_hash)
        if len(self._revoked) > 10_000:
            self._forget_old(now)
        self._revoked[key_hash] = now
        for watch in self._streams.get(key_hash, ()):
            watch.revoked = True
            watch.wake.set()

    def is_revoked(self, key_hash: str) -> bool:
        heard = self._revoked.get(key_hash)
        return heard is not None and time.monotonic() - heard < _REVOKED_MEMORY_SECONDS

    def resync(self) -> None:
        """Revocations may have been missed (the listener was disconnected): forget
        every cached key and have every open stream re-check its key."""
        self.cache.clear()
        for watches in self._streams.values():
            for watch in watches:
                watch.recheck = True
                watch.wake.set()

    @contextlib.contextmanager
    def watch(self, key_hash: str, wake: asyncio.Event) -> Iterator[StreamWatch]:
        """Register an open stream of the key, for as long as the block runs; ``wake`` is
        set when the stream should look at the watch."""
        watch = StreamWatch(key_hash, wake, revoked=self.is_revoked(key_hash))
        self._streams.setdefault(key_hash, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._streams.get(key_hash)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._streams[key_hash]

    def open_streams(self, key_hash: str | None = None) -> int:
        if key_hash is not None:
            return len(self._streams.get(key_hash, ()))
        return sum(len(w) for w in self._streams.values())

    def _forget_old(self, now: float) -> None:
        for key_hash, heard in list(self._revoked.items()):
            if now - heard >= _REVOKED_MEMORY_SECONDS:
                del self._revoked[key_hash]
