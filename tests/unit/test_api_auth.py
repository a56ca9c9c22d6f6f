"""API keys: created per tenant with scopes, stored hashed, found by key, listed, refused
once revoked, their last use written at most once a minute."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.auth import (
    ALL_SCOPES,
    LastUsedThrottle,
    Scope,
    all_keys,
    create_api_key,
    grant_for_key,
    grant_key,
    hash_key,
    list_keys,
    normalize_scopes,
    revoke_key,
    revoke_key_by_reference,
    tenant_for_key,
    touch_key,
)
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.errors import Conflict, Forbidden, NotFound
from ponder.tables import ApiKey, Tenant


@pytest.fixture
def sessions(sqlite_settings: Settings) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(sqlite_settings.database_url))


def test_a_new_key_finds_its_tenant(sessions: sessionmaker[Session]) -> None:
    key = create_api_key(sessions, "acme")
    assert key.startswith("pk_") and len(key) > 40
    with sessions() as s:
        tenant = tenant_for_key(s, key)
        assert tenant is not None and tenant.name == "acme"


def test_only_the_hash_and_a_prefix_are_stored(sessions: sessionmaker[Session]) -> None:
    key = create_api_key(sessions, "acme")
    with sessions() as s:
        row = s.execute(select(ApiKey)).scalar_one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(row.prefix) and len(row.prefix) < 16
    assert key not in (row.key_hash, row.prefix)


def test_keys_of_one_tenant_share_it(sessions: sessionmaker[Session]) -> None:
    first = create_api_key(sessions, "acme")
    second = create_api_key(sessions, "  acme ")
    other = create_api_key(sessions, "globex")
    assert len({first, second, other}) == 3
    with sessions() as s:
        assert len(s.execute(select(Tenant)).all()) == 2
        a, b, c = (tenant_for_key(s, k) for k in (first, second, other))
        assert a is not None and b is not None and c is not None
        assert a.id == b.id != c.id


@pytest.mark.parametrize("key", ["", "pk_", "pk_nope", "sk-abc", "pk_" + "x" * 1000])
def test_unknown_keys_find_nothing(sessions: sessionmaker[Session], key: str) -> None:
    create_api_key(sessions, "acme")
    with sessions() as s:
        assert tenant_for_key(s, key) is None


def test_a_revoked_key_finds_nothing(sessions: sessionmaker[Session]) -> None:
    revoked = create_api_key(sessions, "acme")
    kept = create_api_key(sessions, "acme")
    with sessions() as s, s.begin():
        s.execute(
            update(ApiKey).where(ApiKey.prefix == revoked[:11]).values(revoked_at=datetime.now(UTC))
        )
    with sessions() as s:
        assert tenant_for_key(s, revoked) is None
        assert tenant_for_key(s, kept) is not None


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_tenant_names_are_checked(sessions: sessionmaker[Session], name: str) -> None:
    with pytest.raises(ValueError, match="tenant name"):
        create_api_key(sessions, name)


# ------------------------------------------------------------------ scopes and the key service


def test_keys_hold_all_scopes_unless_told(sessions: sessionmaker[Session]) -> None:
    every = create_api_key(sessions, "acme")
    reader = create_api_key(sessions, "acme", scopes=["read", "READ "], name="dash")
    with sessions() as s:
        full, narrow = grant_for_key(s, every), grant_for_key(s, reader)
        assert full is not None and narrow is not None
        assert full.scopes == (Scope.ADMIN, Scope.SUBMIT, Scope.READ)
        assert narrow.scopes == (Scope.READ,) and narrow.allows(Scope.READ)
        assert not narrow.allows(Scope.SUBMIT)
        row = s.execute(select(ApiKey).where(ApiKey.key_hash == narrow.key_hash)).scalar_one()
        assert row.name == "dash" and row.scopes == "read" and row.last_used_at is None


def test_keys_made_before_scopes_existed_hold_all_of_them(sessions: sessionmaker[Session]) -> None:
    # a row written without the column (what 0007's server default gives old rows)
    key = create_api_key(sessions, "acme")
    with sessions() as s, s.begin():
        tenant_id = s.execute(select(Tenant.id)).scalar_one()
        s.execute(
            text(
                "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_at) "
                "VALUES ('00000000-0000-0000-0000-000000000001', :t, 'pk_old', :h, :now)"
            ),
            {"t": tenant_id, "h": hash_key("pk_old-key"), "now": datetime.now(UTC)},
        )
    with sessions() as s:
        old = grant_for_key(s, "pk_old-key")
        assert old is not None and old.scopes == ALL_SCOPES
        assert grant_for_key(s, key) is not None


@pytest.mark.parametrize(
    ("scopes", "message"),
    [([], "at least one scope"), (["read", "write"], "unknown scope 'write'")],
)
def test_scopes_are_checked(scopes: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_scopes(scopes)


def test_a_key_grants_only_scopes_it_holds(sessions: sessionmaker[Session]) -> None:
    admin = create_api_key(sessions, "acme", scopes=["admin", "read"])
    with sessions() as s:
        granter = grant_for_key(s, admin)
        assert granter is not None
        with pytest.raises(Forbidden, match="`submit` scope because it lacks it"):
            grant_key(s, granter, scopes=["submit", "read"])
        issued = grant_key(s, granter, scopes=["read"], name="ro")
        assert issued.key.startswith(issued.row.prefix)
        made = grant_for_key(s, issued.key)
        assert made is not None and made.scopes == (Scope.READ,)
        assert made.tenant.id == granter.tenant.id


def test_listing_and_revoking(sessions: sessionmaker[Session]) -> None:
    keys = [create_api_key(sessions, "acme", name=f"k{n}") for n in range(3)]
    create_api_key(sessions, "globex")
    with sessions() as s:
        acme = s.execute(select(Tenant.id).where(Tenant.name == "acme")).scalar_one()
        page = list_keys(s, acme, limit=2)
        assert [r.name for r in page.rows] == ["k2", "k1"] and page.next_cursor is not None
        rest = list_keys(s, acme, limit=2, cursor=page.next_cursor)
        assert [r.name for r in rest.rows] == ["k0"] and rest.next_cursor is None
        target = page.rows[1]
        revoked = revoke_key(s, acme, target.id)
        first = revoked.revoked_at
        assert first is not None and revoked.key_hash == hash_key(keys[1])
        assert revoke_key(s, acme, target.id).revoked_at == first  # idempotent
        assert grant_for_key(s, keys[1]) is None
        assert [r.name for r in list_keys(s, acme, limit=10, include_revoked=False).rows] == [
            "k2",
            "k0",
        ]
        assert len(list_keys(s, acme, limit=10).rows) == 3
        globex = s.execute(select(Tenant.id).where(Tenant.name == "globex")).scalar_one()
        with pytest.raises(NotFound, match="no API key"):
            revoke_key(s, globex, target.id)  # another tenant's key is not found
        with pytest.raises(NotFound):
            revoke_key(s, acme, "not-a-uuid")
        listed = all_keys(s)
        assert [name for _, name in listed] == ["acme"] * 3 + ["globex"]
        assert len(all_keys(s, "globex")) == 1


def test_operators_revoke_by_id_prefix_or_whole_key(sessions: sessionmaker[Session]) -> None:
    by_id, by_prefix, whole = (create_api_key(sessions, "acme") for _ in range(3))
    with sessions() as s:
        row = s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(by_id))).scalar_one()
        assert revoke_key_by_reference(s, row.id).revoked_at is not None
        assert revoke_key_by_reference(s, by_prefix[:11]).key_hash == hash_key(by_prefix)
        assert revoke_key_by_reference(s, whole).key_hash == hash_key(whole)
        for key in (by_id, by_prefix, whole):
            assert grant_for_key(s, key) is None
        with pytest.raises(NotFound, match="starts with"):
            revoke_key_by_reference(s, "pk_nothere")
        with pytest.raises(NotFound, match="mistyped"):
            revoke_key_by_reference(s, "pk_" + "x" * 43)
        with pytest.raises(NotFound, match="neither"):
            revoke_key_by_reference(s, "hello")
        # two keys sharing a prefix (made so by hand): ambiguous
        s.execute(update(ApiKey).values(prefix="pk_same"))
        s.commit()
        with pytest.raises(Conflict, match="3 keys start with"):
            revoke_key_by_reference(s, "pk_same")


def test_last_use_is_written_at_most_once_a_minute(sessions: sessionmaker[Session]) -> None:
    key = create_api_key(sessions, "acme")
    start = datetime.now(UTC)
    with sessions() as s:
        grant = grant_for_key(s, key)
        assert grant is not None
        assert touch_key(s, grant.key_id, start)
        assert not touch_key(s, grant.key_id, start + timedelta(seconds=59))  # another process
        assert touch_key(s, grant.key_id, start + timedelta(seconds=61))
        row = s.get(ApiKey, grant.key_id)
        assert row is not None and row.last_used_at == start + timedelta(seconds=61)

    throttle = LastUsedThrottle()
    assert throttle.due(grant)  # never used: due, and counted as written
    assert not throttle.due(grant)  # this process wrote it just now
    recent = replace(grant, key_id="other", last_used_at=start)
    assert not throttle.due(recent, start + timedelta(seconds=30))
    assert throttle.due(recent, start + timedelta(seconds=61))
