"""API keys: each belongs to a tenant and is stored only as its SHA-256 hash.

A key is ``pk_`` followed by 43 URL-safe characters (256 random bits). The database keeps
its hash and a short prefix (enough to tell keys apart in a listing), never the key, so a
leaked database does not leak usable keys. Because the key carries 256 bits of entropy, a
plain (unsalted) hash is enough, and looking a key up by its hash leaks nothing useful
through timing: an attacker cannot steer which hash a guess produces.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder.tables import ApiKey, Tenant

KEY_PREFIX = "pk_"
# what the api_keys.prefix column keeps: "pk_" and the first 8 random characters
_SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 8
# a real key is 46 characters; anything much longer is not worth hashing
_MAX_KEY_CHARS = 256
MAX_TENANT_NAME_CHARS = 200


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``: what the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(sessions: sessionmaker[Session], tenant_name: str) -> str:
    """A new API key for the tenant called ``tenant_name`` (created if missing).

    The key is returned once and never stored; losing it means creating another."""
    name = tenant_name.strip()
    if not name:
        raise ValueError("the tenant name must not be empty")
    if len(name) > MAX_TENANT_NAME_CHARS:
        raise ValueError(f"the tenant name must be at most {MAX_TENANT_NAME_CHARS} characters")
    tenant_id = _get_or_create_tenant(sessions, name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with sessions() as session, session.begin():
        session.add(
            ApiKey(tenant_id=tenant_id, prefix=key[:_SHOWN_PREFIX_CHARS], key_hash=hash_key(key))
        )
    return key


def _get_or_create_tenant(sessions: sessionmaker[Session], name: str) -> str:
    for _ in range(2):
        with sessions() as session:
            tenant_id = session.execute(
                select(Tenant.id).where(Tenant.name == name)
            ).scalar_one_or_none()
            if tenant_id is not None:
                return tenant_id
            tenant = Tenant(name=name)
            session.add(tenant)
            try:
                session.commit()
            except IntegrityError:
                # another process created the same tenant just now: use theirs
                session.rollback()
                continue
            return tenant.id
    raise RuntimeError(f"could not create or find tenant {name!r}")


def tenant_for_key(session: Session, key: str) -> Tenant | None:
    """The tenant owning ``key``, or None if the key is unknown or revoked."""
    if not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_CHARS:
        return None
    wanted = hash_key(key)
    row = session.execute(
        select(Tenant, ApiKey.key_hash)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == wanted, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    tenant, stored_hash = row
    # the index lookup already matched; compare again in constant time so correctness
    # never rests on how the database compares strings
    if not hmac.compare_digest(stored_hash, wanted):
        return None
    return tenant
