"""The cross-process concurrency limiter: semantics on fakeredis AND the real Redis
(db 9, a unique key prefix per test), plus the in-process fallback."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from ponder.llm.limits import LocalLimiter, RedisLimiter, build_limiter
from tests.conftest import REDIS_URL

MakeLimiter = Callable[..., RedisLimiter]


@pytest.fixture(params=["fakeredis", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Iterator[MakeLimiter]:
    """Builds limiters (call it inside the test's event loop) that share one store: a
    FakeServer, or the real Redis under a prefix no other test uses."""
    prefix = f"ponder-test:sem:{uuid.uuid4().hex[:10]}:"
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()

        def fake(**kwargs: Any) -> RedisLimiter:
            client = fakeredis.FakeAsyncRedis(server=server)
            return RedisLimiter(client, prefix=prefix, owns_client=True, **kwargs)

        yield fake
        return

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL}: {exc}", pytrace=False)

    def real(**kwargs: Any) -> RedisLimiter:
        return RedisLimiter.from_url(REDIS_URL, prefix=prefix, **kwargs)

    yield real
    sync = redis.Redis.from_url(REDIS_URL)
    for key in sync.scan_iter(f"{prefix}*"):
        sync.delete(key)
    sync.close()


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        # a stuck limiter fails the test instead of hanging the suite
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(main())


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Poll ``condition`` until it holds. ``timeout`` only keeps a broken limiter from
    hanging the test: every condition here holds within milliseconds to a second, and
    each test sets its leases longer than the timeout where a lapse would also do."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.01)


async def server_ms(limiter: RedisLimiter) -> int:
    """Now on the Redis server's clock, the clock the leases are scored by."""
    seconds, micros = await limiter._redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_never_more_than_limit_holders_across_limiters(make_limiter: MakeLimiter) -> None:
    """Three limiters (think: three worker processes), 30 calls, limit 3."""

    async def go() -> tuple[int, int, list[int]]:
        limiters = [make_limiter() for _ in range(3)]
        in_flight = 0
        peak = 0
        seen_holders: list[int] = []
        full = asyncio.Event()

        async def call(limiter: RedisLimiter) -> None:
            nonlocal in_flight, peak
            async with limiter.slot("model-a", 3):
                in_flight += 1
                peak = max(peak, in_flight)
                if in_flight == 3:
                    full.set()
                seen_holders.append(len(await limiter.holders("model-a")))
                # the first holders stay until three hold at once (however loaded the
                # machine), so the limit is reached; 27 more calls press against it
                await asyncio.wait_for(full.wait(), 30)
                await asyncio.sleep(0.01)
                in_flight -= 1

        await asyncio.gather(*(call(limiters[i % 3]) for i in range(30)))
        left = len(await limiters[0].holders("model-a"))
        for limiter in limiters:
            await limiter.aclose()
        return peak, left, seen_holders

    peak, left, seen_holders = run(go())
    assert peak == 3  # reached, never exceeded
    assert max(seen_holders) <= 3
    assert left == 0


def test_profiles_have_separate_limits(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        limiter = make_limiter()
        async with limiter.slot("a", 1), limiter.slot("b", 1):
            assert await limiter.holders("a") != await limiter.holders("b")
            assert len(await limiter.holders("a")) == 1
        await limiter.aclose()

    run(go())


def test_an_expired_holder_is_reclaimed(make_limiter: MakeLimiter) -> None:
    """A worker that died holding a slot (never released, never renewed) frees it when
    its lease runs out."""

    async def go() -> None:
        # 2 s: long enough that the check just after taking the slot sees it still held
        # on a loaded machine
        dead = make_limiter(lease_s=2.0)
        alive = make_limiter(lease_s=30.0, poll_s=0.02)
        key = dead.key("model-a")
        assert await dead.try_acquire(key, "crashed-worker", 1)
        lapses_at = await dead._redis.zscore(key, "crashed-worker")  # ms, server clock
        assert not await alive.try_acquire(key, "someone", 1)  # full
        async with alive.slot("model-a", 1):
            [holder] = await alive.holders("model-a")
            assert holder != "crashed-worker"
            # taken once the dead holder's lease had run out, by the server's clock
            taken_at = await alive._redis.zscore(key, holder) - 30_000
            assert taken_at >= lapses_at
        await dead.aclose()
        await alive.aclose()

    run(go())


def test_a_long_call_keeps_its_slot_by_renewing(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        # renewed ten times per lease: only a stall of 0.9 s would let the lease lapse
        limiter = make_limiter(lease_s=1.0, renew_s=0.1)
        other = make_limiter(lease_s=1.0)
        key = limiter.key("model-a")
        async with limiter.slot("model-a", 1):
            [holder] = await limiter.holders("model-a")
            first_lease_ends = await limiter._redis.zscore(key, holder)
            for lease in (1, 2, 3):  # the call outlives its first lease three times
                ends = first_lease_ends + (lease - 1) * 1000

                async def past(ends: float = ends) -> bool:
                    return await server_ms(limiter) > ends

                await until(past, f"lease {lease} to run out")
                assert not await other.try_acquire(key, "intruder", 1)
                assert await limiter.holders("model-a") == [holder]
        assert await other.try_acquire(key, "next", 1)
        await limiter.aclose()
        await other.aclose()

    run(go())


def test_release_is_idempotent(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        limiter = make_limiter()
        key = limiter.key("model-a")
        assert await limiter.try_acquire(key, "h1", 2)
        assert await limiter.try_acquire(key, "h2", 2)
        assert not await limiter.try_acquire(key, "h3", 2)
        await limiter.release(key, "h1")
        await limiter.release(key, "h1")  # twice: no effect on others
        await limiter.release(key, "never-held")
        assert await limiter.holders("model-a") == ["h2"]
        assert await limiter.try_acquire(key, "h3", 2)
        assert not await limiter.try_acquire(key, "h4", 2)
        # a holder asking again renews its own slot rather than taking a second one
        assert await limiter.try_acquire(key, "h3", 2)
        assert sorted(await limiter.holders("model-a")) == ["h2", "h3"]
        await limiter.aclose()

    run(go())


def test_cancelled_waiters_and_holders_leave_no_slot_behind(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        # a lease far longer than the test: only a release can empty the semaphore
        limiter = make_limiter(poll_s=0.01, lease_s=600.0)
        key = limiter.key("model-a")
        entered = asyncio.Event()
        refused = asyncio.Event()
        try_acquire = limiter.try_acquire

        async def watched_try_acquire(key: str, holder: str, limit: int) -> bool:
            taken = await try_acquire(key, holder, limit)
            if not taken:
                refused.set()
            return taken

        limiter.try_acquire = watched_try_acquire  # type: ignore[method-assign]

        async def hold_forever() -> None:
            async with limiter.slot("model-a", 1):
                entered.set()
                await asyncio.sleep(3600)

        async def wait_for_slot() -> None:
            async with limiter.slot("model-a", 1):
                raise AssertionError("the slot was taken")

        holder = asyncio.ensure_future(hold_forever())
        await entered.wait()
        waiter = asyncio.ensure_future(wait_for_slot())
        await asyncio.wait_for(refused.wait(), 30)  # the waiter is waiting for the slot
        waiter.cancel()
        holder.cancel()
        await asyncio.gather(holder, waiter, return_exceptions=True)

        async def empty() -> bool:  # the shielded release has finished
            return bool(await limiter._redis.zcard(key) == 0)

        await until(empty, "the cancelled holder's slot to be released")
        assert await limiter.holders("model-a") == []
        await limiter.aclose()

    run(go())


def test_the_key_expires_with_its_last_holder(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        # 2 s: the time to live is read well before it can run out, on a loaded machine too
        limiter = make_limiter(lease_s=2.0)
        key = limiter.key("model-a")
        assert await limiter.try_acquire(key, "h", 1)
        # the key carries its last holder's lease as its time to live ...
        assert 0 < await limiter._redis.pttl(key) <= 2000
        # ... and is gone once it runs out, with nobody releasing anything

        async def gone() -> bool:
            return bool(await limiter._redis.exists(key) == 0)

        await until(gone, "the key to expire")
        await limiter.aclose()

    run(go())


def test_an_unreachable_redis_fails_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> bool:
        limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0")
        ran = False
        async with limiter.slot("model-a", 1):
            ran = True
        await limiter.aclose()
        return ran

    with caplog.at_level(logging.WARNING, logger="ponder.llm.limits"):
        assert run(go()) is True
    assert "Redis unavailable" in caplog.text


def test_local_limiter_never_exceeds_the_limit() -> None:
    async def go() -> tuple[int, int]:
        limiter = LocalLimiter()
        in_flight = 0
        peak = 0

        async def call() -> None:
            nonlocal in_flight, peak
            async with limiter.slot("m", 4):
                in_flight += 1
                peak = max(peak, in_flight, limiter.held("m"))
                await asyncio.sleep(0.001)
                in_flight -= 1

        await asyncio.gather(*(call() for _ in range(50)))
        return peak, limiter.held("m")

    assert run(go()) == (4, 0)


def test_limits_below_one_are_refused() -> None:
    async def go() -> None:
        async with LocalLimiter().slot("m", 0):
            pass

    with pytest.raises(ValueError, match="at least 1"):
        run(go())


def test_build_limiter_follows_the_broker() -> None:
    redis_limiter = build_limiter("redis://127.0.0.1:6379/0")
    assert isinstance(redis_limiter, RedisLimiter)
    assert redis_limiter.key("gpt") == "ponder:sem:gpt"
    run(redis_limiter.aclose())
    assert isinstance(build_limiter("filesystem:///tmp/broker"), LocalLimiter)
    assert isinstance(build_limiter("memory://"), LocalLimiter)


def test_hundreds_of_concurrent_holders_never_fail_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One process's limiter with 300 calls taking, holding and renewing slots at once
    (more than its Redis connections): every command waits for a connection rather
    than failing, so the limit keeps holding and nothing goes ahead unlimited."""
    import logging
    import uuid

    limiter = RedisLimiter.from_url(REDIS_URL, prefix=f"ponder-test-{uuid.uuid4().hex}:")
    peak = 0
    now = 0
    crowded = asyncio.Event()

    async def one() -> None:
        nonlocal peak, now
        async with limiter.slot("busy", 250):
            now += 1
            peak = max(peak, now)
            if now >= 200:
                crowded.set()
            # the first holders stay until 200 (far more than the 32 connections) hold
            # at once, however loaded the machine; the last 50 calls wait for a slot
            await asyncio.wait_for(crowded.wait(), 60)
            await asyncio.sleep(0.01)
            now -= 1

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(300)))
        await limiter.aclose()

    with caplog.at_level(logging.WARNING, logger="ponder.llm.limits"):
        asyncio.run(go())
    assert 200 <= peak <= 250
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]
