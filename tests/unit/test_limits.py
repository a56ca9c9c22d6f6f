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


def test_never_more_than_limit_holders_across_limiters(make_limiter: MakeLimiter) -> None:
    """Three limiters (think: three worker processes), 30 calls, limit 3."""

    async def go() -> tuple[int, int, list[int]]:
        limiters = [make_limiter() for _ in range(3)]
        in_flight = 0
        peak = 0
        seen_holders: list[int] = []

        async def call(limiter: RedisLimiter) -> None:
            nonlocal in_flight, peak
            async with limiter.slot("model-a", 3):
                in_flight += 1
                peak = max(peak, in_flight)
                seen_holders.append(len(await limiter.holders("model-a")))
                # long enough that the first three holders overlap even on a loaded machine
                await asyncio.sleep(0.05)
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

    async def go() -> float:
        dead = make_limiter(lease_s=0.3)
        alive = make_limiter(lease_s=5.0, poll_s=0.02)
        key = dead.key("model-a")
        assert await dead.try_acquire(key, "crashed-worker", 1)
        assert not await alive.try_acquire(key, "someone", 1)  # full
        started = time.monotonic()
        async with alive.slot("model-a", 1):
            waited = time.monotonic() - started
            assert "crashed-worker" not in await alive.holders("model-a")
        await dead.aclose()
        await alive.aclose()
        return waited

    waited = run(go())
    assert 0.1 <= waited < 2.0


def test_a_long_call_keeps_its_slot_by_renewing(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        limiter = make_limiter(lease_s=0.3, renew_s=0.05)
        other = make_limiter(lease_s=0.3)
        key = limiter.key("model-a")
        async with limiter.slot("model-a", 1):
            for _ in range(8):  # 0.8 s: well past the 0.3 s lease
                await asyncio.sleep(0.1)
                assert not await other.try_acquire(key, "intruder", 1)
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
        limiter = make_limiter(poll_s=0.01)
        entered = asyncio.Event()

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
        await asyncio.sleep(0.1)
        waiter.cancel()
        holder.cancel()
        await asyncio.gather(holder, waiter, return_exceptions=True)
        await asyncio.sleep(0.05)  # the shielded release finishes
        assert await limiter.holders("model-a") == []
        await limiter.aclose()

    run(go())


def test_the_key_expires_with_its_last_holder(make_limiter: MakeLimiter) -> None:
    async def go() -> None:
        limiter = make_limiter(lease_s=0.2)
        assert await limiter.try_acquire(limiter.key("model-a"), "h", 1)
        await asyncio.sleep(0.4)
        assert await limiter._redis.exists(limiter.key("model-a")) == 0
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

    async def one() -> None:
        nonlocal peak, now
        async with limiter.slot("busy", 250):
            now += 1
            peak = max(peak, now)
            await asyncio.sleep(0.05)
            now -= 1

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(300)))
        await limiter.aclose()

    with caplog.at_level(logging.WARNING, logger="ponder.llm.limits"):
        asyncio.run(go())
    assert 100 <= peak <= 250
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]
