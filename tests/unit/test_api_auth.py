"""API keys: created per tenant, stored hashed, found by key, refused once revoked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.auth import create_api_key, tenant_for_key
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
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
