"""Sending outbox rows to a real HTTP receiver, against real Postgres: signatures an
independent Standard Webhooks library accepts, the retry schedule, Retry-After, 3xx as
failure, 410 disabling the target, timeouts, the attempt log, claim fencing and the SSRF
guard at connect time."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import standardwebhooks
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.tables import (
    DeliveryStatus,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
    utcnow,
)
from ponder.webhooks.delivery import (
    active_secrets,
    deliver,
    due_deliveries,
    redeliver,
    rotate_secret,
    take_unsent,
)
from ponder.webhooks.outbox import add_delivery
from ponder.webhooks.ssrf import guarded_client
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(pg_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(
        update={"webhook_retry_schedule": [1.0, 2.0, 4.0], "webhook_retry_jitter": 0.0}
    )


@pytest.fixture
def tenant(sessions: sessionmaker[Session]) -> str:
    with sessions() as s, s.begin():
        t = Tenant(name="hooks")
        s.add(t)
        s.flush()
        return t.id


def start_receiver(plan: str) -> tuple[Receiver, str]:
    r = Receiver(parse_plan(plan))
    return r, r.start()


def new_delivery(sessions: sessionmaker[Session], tenant: str, url: str) -> str:
    with sessions() as s, s.begin():
        return add_delivery(
            s,
            tenant_id=tenant,
            url=url,
            event_type="job.completed",
            data={"id": "job-1", "status": "completed", "result": {"answer": "24"}},
        )


def row(sessions: sessionmaker[Session], delivery_id: str) -> WebhookDelivery:
    with sessions() as s:
        d = s.get(WebhookDelivery, delivery_id)
        assert d is not None
        s.expunge(d)
        return d


def attempts(sessions: sessionmaker[Session], delivery_id: str) -> list[WebhookAttempt]:
    with sessions() as s:
        rows = list(
            s.execute(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.number)
            ).scalars()
        )
        s.expunge_all()
        return rows


def make_due(sessions: sessionmaker[Session], delivery_id: str) -> None:
    """Skip the wait before the next attempt (the schedule itself is checked separately)."""
    with sessions() as s, s.begin():
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def secrets_of(sessions: sessionmaker[Session], tenant: str) -> list[str]:
    with sessions() as s, s.begin():
        return [x.secret for x in active_secrets(s, tenant, utcnow())]


def test_a_2xx_delivers_and_the_signature_verifies(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("200")
    delivery_id = new_delivery(sessions, tenant, url + "/hook")
    with guarded_client(allow_private=True, timeout=5) as client:
        out = deliver(sessions, delivery_id, settings=settings, client=client)
    receiver.stop()
    assert out.status == DeliveryStatus.DELIVERED
    [req] = receiver.requests
    assert req["path"] == "/hook"
    wh = standardwebhooks.Webhook(secrets_of(sessions, tenant)[0])
    payload = wh.verify(req["body"], req["headers"])
    assert payload["type"] == "job.completed"
    assert payload["data"]["result"] == {"answer": "24"}
    d = row(sessions, delivery_id)
    assert req["headers"]["webhook-id"] == d.webhook_id
    assert d.status == "delivered" and d.delivered_at is not None and d.last_status_code == 200
    [a] = attempts(sessions, delivery_id)
    assert a.number == 1 and a.status_code == 200 and a.error is None and a.latency_ms >= 0
    # a delivered row is not sent again
    with guarded_client(allow_private=True, timeout=5) as client:
        again = deliver(sessions, delivery_id, settings=settings, client=client)
    assert again.status == "skipped"


def test_failures_follow_the_schedule_then_fail_keeping_the_webhook_id(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("500")
    delivery_id = new_delivery(sessions, tenant, url)
    delays = []
    with guarded_client(allow_private=True, timeout=5) as client:
        for _ in range(4):
            out = deliver(sessions, delivery_id, settings=settings, client=client)
            delays.append(out.next_in)
            make_due(sessions, delivery_id)
    receiver.stop()
    assert delays == [1.0, 2.0, 4.0, None]
    d = row(sessions, delivery_id)
    assert d.status == "failed" and d.attempts == 4 and d.last_status_code == 500
    assert "HTTP 500" in (d.last_error or "")
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {d.webhook_id}
    log = attempts(sessions, delivery_id)
    assert [a.number for a in log] == [1, 2, 3, 4]
    assert all(a.status_code == 500 for a in log)
    assert log[-1].next_attempt_at is None and log[0].next_attempt_at is not None


def test_jitter_spreads_retries(settings: Settings) -> None:
    from ponder.webhooks.delivery import Attempt, retry_delay

    s = settings.model_copy(update={"webhook_retry_schedule": [100.0], "webhook_retry_jitter": 0.2})
    rng = random.Random(7)
    delays = {retry_delay(s, 1, Attempt(500, "x", 1.0), rng) for _ in range(50)}
    assert all(d is not None and 80.0 <= d <= 120.0 for d in delays)
    assert len(delays) > 40


def test_retry_after_on_429_sets_the_next_attempt(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("429:7x1,503:3x1,500")
    delivery_id = new_delivery(sessions, tenant, url)
    with guarded_client(allow_private=True, timeout=5) as client:
        first = deliver(sessions, delivery_id, settings=settings, client=client)
        before = utcnow()
        assert first.next_in == 7.0
        d = row(sessions, delivery_id)
        assert timedelta(seconds=6) < d.next_attempt_at - before <= timedelta(seconds=7)
        make_due(sessions, delivery_id)
        second = deliver(sessions, delivery_id, settings=settings, client=client)
        make_due(sessions, delivery_id)
        third = deliver(sessions, delivery_id, settings=settings, client=client)
    receiver.stop()
    assert second.next_in == 3.0
    assert third.next_in == 4.0  # a 500's Retry-After is not asked for: the schedule goes on


def test_a_redirect_is_a_failure_and_is_not_followed(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("301x1,200")
    delivery_id = new_delivery(sessions, tenant, url)
    with guarded_client(allow_private=True, timeout=5) as client:
        out = deliver(sessions, delivery_id, settings=settings, client=client)
    receiver.stop()
    assert out.status == "pending" and out.status_code == 301
    assert "not followed" in (out.error or "")
    assert [r["path"] for r in receiver.requests] == ["/"]  # /moved never requested


def test_410_disables_the_target_until_a_redelivery(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("410x1,200")
    first = new_delivery(sessions, tenant, url)
    second = new_delivery(sessions, tenant, url)
    with guarded_client(allow_private=True, timeout=5) as client:
        assert deliver(sessions, first, settings=settings, client=client).status == "disabled"
        out = deliver(sessions, second, settings=settings, client=client)
        assert out.status == "disabled" and "disabled" in (out.error or "")
        assert len(receiver.requests) == 1  # the second was not sent
        with sessions() as s, s.begin():
            d = s.get(WebhookDelivery, second)
            assert d is not None
            redeliver(s, d, now=utcnow())
        assert deliver(sessions, second, settings=settings, client=client).status == "delivered"
    receiver.stop()
    assert len(receiver.requests) == 2
    assert (attempts(sessions, second)[0].error or "").startswith("not sent")


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    # the receiver answers only after 20 s, 40 times the timeout
    receiver, url = start_receiver("200@20x1,200")
    delivery_id = new_delivery(sessions, tenant, url)
    quick = settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    with guarded_client(allow_private=True, timeout=0.5) as client:
        out = deliver(sessions, delivery_id, settings=quick, client=client)
    receiver.stop()
    assert out.status == "pending" and out.status_code is None
    assert out.error == "no answer within 0.5 s"
    [a] = attempts(sessions, delivery_id)
    # the attempt ended when the sender gave up, not when the receiver answered
    assert a.latency_ms < 20_000


def test_rotation_sends_both_signatures_until_the_old_secret_expires(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    old = secrets_of(sessions, tenant)
    with sessions() as s, s.begin():
        rotate_secret(s, tenant, grace_seconds=3600, now=utcnow())
    both = secrets_of(sessions, tenant)
    assert len(both) == 2 and old[0] in both
    new = next(x for x in both if x != old[0])
    receiver, url = start_receiver("200")
    delivery_id = new_delivery(sessions, tenant, url)
    with guarded_client(allow_private=True, timeout=5) as client:
        deliver(sessions, delivery_id, settings=settings, client=client)
    [req] = receiver.requests
    assert len(req["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old[0], new):  # a receiver on either secret accepts it
        standardwebhooks.Webhook(secret).verify(req["body"], req["headers"])
    # once the old secret expires only the new one signs
    with sessions() as s, s.begin():
        s.execute(
            update(WebhookSecret)
            .where(WebhookSecret.secret == old[0])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    second = new_delivery(sessions, tenant, url)
    with guarded_client(allow_private=True, timeout=5) as client:
        deliver(sessions, second, settings=settings, client=client)
    receiver.stop()
    last = receiver.requests[-1]
    assert len(last["headers"]["webhook-signature"].split(" ")) == 1
    standardwebhooks.Webhook(new).verify(last["body"], last["headers"])
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old[0]).verify(last["body"], last["headers"])


def test_two_senders_racing_send_once(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("200@0.3x1,200")
    delivery_id = new_delivery(sessions, tenant, url)
    results: list[str] = []

    def send() -> None:
        with guarded_client(allow_private=True, timeout=5) as client:
            results.append(deliver(sessions, delivery_id, settings=settings, client=client).status)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    receiver.stop()
    assert sorted(results) == ["delivered", "skipped", "skipped", "skipped"]
    assert len(receiver.requests) == 1


def test_ssrf_a_name_resolving_to_loopback_is_refused_when_connecting(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    receiver, url = start_receiver("200")
    port = url.rsplit(":", 1)[1]
    delivery_id = new_delivery(sessions, tenant, f"http://rebind.example:{port}/hook")
    strict = settings.model_copy(update={"webhook_allow_private": False})
    # a resolver under an attacker's control: the name resolves to loopback
    with guarded_client(
        allow_private=False, timeout=5, resolver=lambda host, port: ["127.0.0.1"]
    ) as client:
        out = deliver(sessions, delivery_id, settings=strict, client=client)
    receiver.stop()
    assert out.status == "pending"
    assert out.error is not None and "refused" in out.error and "loopback" in out.error
    assert receiver.requests == []


def test_ssrf_the_checked_address_is_the_one_connected_to(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    """DNS rebinding: the name resolves to a public address once and to loopback after.
    The guard connects to the address it checked, so loopback is never reached."""
    receiver, url = start_receiver("200")
    port = url.rsplit(":", 1)[1]
    answers = iter([["192.0.2.10"], ["127.0.0.1"], ["127.0.0.1"]])  # TEST-NET-1, unroutable
    delivery_id = new_delivery(sessions, tenant, f"http://rebind.example:{port}/hook")
    strict = settings.model_copy(
        update={"webhook_allow_private": False, "webhook_timeout_seconds": 1.0}
    )
    with guarded_client(
        allow_private=False, timeout=1.0, resolver=lambda host, port: next(answers)
    ) as client:
        out = deliver(sessions, delivery_id, settings=strict, client=client)
    receiver.stop()
    assert out.status == "pending" and out.status_code is None
    assert receiver.requests == []


def test_the_reaper_picks_due_and_lost_deliveries_once(
    sessions: sessionmaker[Session], settings: Settings, tenant: str
) -> None:
    fresh = new_delivery(sessions, tenant, "http://127.0.0.1:9/a")
    lost = new_delivery(sessions, tenant, "http://127.0.0.1:9/b")
    later = new_delivery(sessions, tenant, "http://127.0.0.1:9/c")
    now = utcnow()
    with sessions() as s, s.begin():
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == lost)
            .values(enqueued_at=now - timedelta(minutes=10))
        )
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == later)
            .values(next_attempt_at=now + timedelta(minutes=10))
        )
    # a task was just sent for `fresh`: the reaper leaves it alone
    assert take_unsent(sessions, ids=[fresh]) == [fresh]
    stale = now - timedelta(minutes=5)
    assert due_deliveries(sessions, now=utcnow(), stale_before=stale) == [lost]
    assert due_deliveries(sessions, now=utcnow(), stale_before=stale) == []
