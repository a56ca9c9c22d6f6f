"""Tenants and their API keys: each key belongs to a tenant, holds scopes and is stored
only as its SHA-256 hash. The key use cases (create, list, revoke, authenticate, record
the last use) are written once here; the API (``/v1/keys``) and the command line
(``ponder keys``) call them.

A key is ``pk_`` followed by 43 URL-safe characters (256 random bits). The database keeps
its hash and a short prefix (enough to tell keys apart in a listing), never the key, so a
leaked database does not leak usable keys. Because the key carries 256 bits of entropy, a
plain (unsalted) hash is enough, and looking a key up by its hash leaks nothing useful
through timing: an attacker cannot steer which hash a guess produces.

**Scopes.** A key holds any of :class:`Scope` (``admin``, ``submit``, ``read``); they are
independent: a ``submit``-only key can send jobs but not read them back. Keys made before
scopes existed hold all three. A key can only create keys whose scopes it holds itself.

**Revocation** sets ``revoked_at``; the row stays (a listing shows it) and the key is
refused from then on. Processes that cache verified keys (the API's ``AuthCache``) are
told through :mod:`ponder.revocation`.

**Last use** is written at most once per :data:`LAST_USED_RESOLUTION` per key, so a busy
key does not cost a write per request: :class:`LastUsedThrottle` skips writes within a
process, and :func:`touch_key`'s conditional update skips them across processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder.errors import Conflict, Forbidden, NotFound
from ponder.pagination import Cursor, Page, newest_first, parse_cursor
from ponder.tables import ApiKey, Tenant, canonical_id, utcnow

KEY_PREFIX = "pk_"
# what the api_keys.prefix column keeps: "pk_" and the first 8 random characters
_SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 8
# a real key is 46 characters; anything much longer is not worth hashing
_MAX_KEY_CHARS = 256
MAX_TENANT_NAME_CHARS = 200
MAX_KEY_NAME_CHARS = 200
# how precisely ``api_keys.last_used_at`` follows a key's use
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Scope(StrEnum):
    """What a key may do. Every API route needs exactly one of them."""

    ADMIN = "admin"  # manage keys; see and rotate the webhook signing secrets
    SUBMIT = "submit"  # create, change and cancel work (jobs, batches, datasets, ...)
    READ = "read"  # read everything of the tenant's (jobs, events, batches, ...)


# the order scopes are stored and shown in
ALL_SCOPES: tuple[Scope, ...] = (Scope.ADMIN, Scope.SUBMIT, Scope.READ)


def normalize_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """``values`` as scopes, without repeats, in :data:`ALL_SCOPES` order; a
    ``ValueError`` saying what is wrong for an unknown scope or none at all."""
    wanted = set()
    for value in values:
        try:
            wanted.add(Scope(value.strip().lower()))
        except ValueError:
            raise ValueError(
                f"unknown scope {value!r}; the scopes are {', '.join(ALL_SCOPES)}"
            ) from None
    if not wanted:
        raise ValueError(f"a key needs at least one scope ({', '.join(ALL_SCOPES)})")
    return tuple(s for s in ALL_SCOPES if s in wanted)


def scopes_of(row: ApiKey) -> tuple[Scope, ...]:
    """The scopes a stored key holds (words this version does not know are ignored)."""
    words = set(row.scopes.split())
    return tuple(s for s in ALL_SCOPES if s.value in words)


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``: what the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def plausible_key(key: str) -> bool:
    """Whether ``key`` could be a key this server issued (else it is not looked up)."""
    return key.startswith(KEY_PREFIX) and len(key) <= _MAX_KEY_CHARS


@dataclass(frozen=True)
class KeyGrant:
    """What a verified key grants: its tenant and scopes. ``last_used_at`` is as read
    when the key was verified."""

    key_id: str
    key_hash: str
    tenant: Tenant
    scopes: tuple[Scope, ...]
    last_used_at: datetime | None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: ``key`` is shown once and never stored."""

    key: str
    row: ApiKey


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_KEY_NAME_CHARS:
        raise ValueError(f"a key's name must be at most {MAX_KEY_NAME_CHARS} characters")
    return name or None


def issue_key(
    session: Session,
    tenant_id: str,
    *,
    scopes: Iterable[str] = ALL_SCOPES,
    name: str | None = None,
) -> IssuedKey:
    """A new key of the tenant with ``scopes``, committed. ``ValueError`` for bad
    scopes or a name that is too long."""
    chosen = normalize_scopes(scopes)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=tenant_id,
        prefix=key[:_SHOWN_PREFIX_CHARS],
        key_hash=hash_key(key),
        scopes=" ".join(chosen),
        name=_check_name(name),
    )
    session.add(row)
    session.commit()
    return IssuedKey(key, row)


def grant_key(
    session: Session,
    granter: KeyGrant,
    *,
    scopes: Iterable[str],
    name: str | None = None,
) -> IssuedKey:
    """A new key of ``granter``'s tenant, made through ``granter`` (an ``admin`` key):
    :class:`Forbidden` if it asks for a scope ``granter`` lacks, so no key can create a
    more powerful one."""
    chosen = normalize_scopes(scopes)
    lacking = [s for s in chosen if not granter.allows(s)]
    if lacking:
        raise Forbidden(
            f"this API key cannot create a key with the {_listed(lacking)} "
            f"{'scope' if len(lacking) == 1 else 'scopes'} because it lacks "
            f"{'it' if len(lacking) == 1 else 'them'} itself (its scopes: "
            f"{', '.join(granter.scopes)})"
        )
    return issue_key(session, granter.tenant.id, scopes=chosen, name=name)


def _listed(scopes: Iterable[str]) -> str:
    return ", ".join(f"`{s}`" for s in scopes)


def create_api_key(
    sessions: sessionmaker[Session],
    tenant_name: str,
    *,
    scopes: Iterable[str] = ALL_SCOPES,
    name: str | None = None,
) -> str:
    """A new API key for the tenant called ``tenant_name`` (created if missing), with
    ``scopes`` (all of them unless told). For operators (``ponder keys create``).

    The key is returned once and never stored; losing it means creating another."""
    tenant = tenant_name.strip()
    if not tenant:
        raise ValueError("the tenant name must not be empty")
    if len(tenant) > MAX_TENANT_NAME_CHARS:
        raise ValueError(f"the tenant name must be at most {MAX_TENANT_NAME_CHARS} characters")
    chosen = normalize_scopes(scopes)
    label = _check_name(name)
    tenant_id = _get_or_create_tenant(sessions, tenant)
    with sessions() as session:
        return issue_key(session, tenant_id, scopes=chosen, name=label).key


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


# ---- verifying keys ------------------------------------------------------------------


def grant_for_key(session: Session, key: str) -> KeyGrant | None:
    """What ``key`` grants, or None if the key is unknown or revoked."""
    if not plausible_key(key):
        return None
    return grant_for_hash(session, hash_key(key))


def grant_for_hash(session: Session, wanted: str) -> KeyGrant | None:
    """What the key whose hash is ``wanted`` grants, or None if it is unknown or
    revoked."""
    row = session.execute(
        select(Tenant, ApiKey)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == wanted, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    tenant, key_row = row
    # the index lookup already matched; compare again in constant time so correctness
    # never rests on how the database compares strings
    if not hmac.compare_digest(key_row.key_hash, wanted):
        return None
    session.expunge(tenant)
    return KeyGrant(
        key_id=key_row.id,
        key_hash=key_row.key_hash,
        tenant=tenant,
        scopes=scopes_of(key_row),
        last_used_at=key_row.last_used_at,
    )


def tenant_for_key(session: Session, key: str) -> Tenant | None:
    """The tenant owning ``key``, or None if the key is unknown or revoked."""
    grant = grant_for_key(session, key)
    return None if grant is None else grant.tenant


# ---- last use ---------------------------------------------------------------------------


def touch_key(session: Session, key_id: str, now: datetime | None = None) -> bool:
    """Record that the key was used at ``now`` (committed), unless that was already
    recorded less than :data:`LAST_USED_RESOLUTION` ago (by any process). True if it
    wrote."""
    now = now or utcnow()
    result = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at <= now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


class LastUsedThrottle:
    """Which keys are due a :func:`touch_key`, so one process writes a key's last use
    at most once per :data:`LAST_USED_RESOLUTION` however busy the key is."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._written: dict[str, float] = {}  # key id -> time.monotonic() of our last write

    def due(self, grant: KeyGrant, now: datetime | None = None) -> bool:
        """Whether to write ``grant``'s last use now; if so, the write counts as done."""
        every = LAST_USED_RESOLUTION.total_seconds()
        if grant.last_used_at is not None and ((now or utcnow()) - grant.last_used_at) < (
            LAST_USED_RESOLUTION
        ):
            return False
        mono = time.monotonic()
        last = self._written.get(grant.key_id)
        if last is not None and mono - last < every:
            return False
        if len(self._written) >= self._max:
            self._written.clear()
        self._written[grant.key_id] = mono
        return True


# ---- listing and revoking ---------------------------------------------------------------


def list_keys(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    include_revoked: bool = True,
) -> Page[ApiKey]:
    """The tenant's keys, newest first (never the keys themselves: they are not
    stored)."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return newest_first(
        session,
        query,
        time_column=ApiKey.created_at,
        id_column=ApiKey.id,
        limit=limit,
        after=parse_cursor(cursor),
        position=lambda row: Cursor(row.created_at, row.id),
    )


def all_keys(session: Session, tenant_name: str | None = None) -> list[tuple[ApiKey, str]]:
    """Every key (of the tenant called ``tenant_name``, if given) with its tenant's
    name, by tenant then newest first. For operators (``ponder keys list``)."""
    query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name.strip())
    query = query.order_by(Tenant.name, ApiKey.created_at.desc(), ApiKey.id.desc())
    return [(row, name) for row, name in session.execute(query).all()]


def get_key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    """The tenant's key with id ``key_id``; :class:`NotFound` otherwise."""
    wanted = canonical_id(key_id)
    row = None if wanted is None else session.get(ApiKey, wanted)
    if row is None or row.tenant_id != tenant_id:
        raise _not_found(key_id)
    return row


def revoke_key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    """Revoke the tenant's key ``key_id`` (committed; a key already revoked keeps its
    first ``revoked_at``). The caller tells the processes that cache keys
    (:mod:`ponder.revocation`) with the row's ``key_hash``."""
    return _revoke(session, get_key(session, tenant_id, key_id))


def revoke_key_by_reference(session: Session, reference: str) -> ApiKey:
    """Revoke the key ``reference`` names, whatever its tenant (for operators): its id,
    the prefix a listing shows (``pk_`` and 8 characters) or the whole key.
    :class:`NotFound` if none matches, :class:`Conflict` if a prefix matches several."""
    reference = reference.strip()
    wanted_id = canonical_id(reference)
    if wanted_id is not None:
        row = session.get(ApiKey, wanted_id)
        if row is None:
            raise NotFound(f"no API key has the id {reference!r}")
        return _revoke(session, row)
    if not reference.startswith(KEY_PREFIX) or len(reference) > _MAX_KEY_CHARS:
        raise NotFound(
            f"{_shown(reference)} is neither a key id, a key prefix (pk_ and 8 characters) "
            "nor a key"
        )
    if len(reference) > _SHOWN_PREFIX_CHARS:
        found = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(reference)))
        row = found.one_or_none()
        if row is None:
            raise NotFound("no key matches the key given (it may have been mistyped)")
        return _revoke(session, row)
    rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == reference)).all())
    if not rows:
        raise NotFound(f"no API key starts with {_shown(reference)}")
    if len(rows) > 1:
        raise Conflict(
            f"{len(rows)} keys start with {reference!r}; revoke one by its id "
            "(`ponder keys list` shows the ids)"
        )
    return _revoke(session, rows[0])


def _revoke(session: Session, row: ApiKey) -> ApiKey:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def _shown(text: str) -> str:
    return repr(text if len(text) <= 64 else text[:64] + "...")


def _not_found(key_id: str) -> NotFound:
    return NotFound(f"no API key {_shown(key_id)} belongs to this API key's tenant")
