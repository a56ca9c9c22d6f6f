"""One API process's key state (api/keyring.py), and keys in the embedded mode (SQLite,
no Redis): scopes, /v1/keys, revocation at once on the process, `ponder keys`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.keyring import AuthCache, Keyring
from api.main import create_app
from ponder.auth import KeyGrant, Scope, create_api_key
from ponder.config import Settings
from ponder.revocation import RevocationListener, channel
from ponder.tables import Tenant
from worker.celery_app import dispatcher_for


def grant(key_hash: str = "a" * 64) -> KeyGrant:
    return KeyGrant("id-1", key_hash, Tenant(id="t", name="acme"), (Scope.READ,), None)


def test_the_cache_forgets_a_dropped_key_and_refuses_stale_lookups() -> None:
    cache = AuthCache(ttl=60)
    cache.put(grant())
    assert cache.get("a" * 64) is not None
    before = cache.epoch
    cache.drop("a" * 64)
    assert cache.get("a" * 64) is None
    # a lookup that started before the drop must not put back what it read
    cache.put(grant(), before)
    assert cache.get("a" * 64) is None
    cache.put(grant(), cache.epoch)
    assert cache.get("a" * 64) is not None
    assert AuthCache(ttl=0).get("a" * 64) is None


def test_a_revocation_wakes_the_keys_streams_only() -> None:
    async def scenario() -> None:
        keyring = Keyring(AuthCache(ttl=60))
        keyring.cache.put(grant())
        mine, other = asyncio.Event(), asyncio.Event()
        with keyring.watch("a" * 64, mine) as watch, keyring.watch("b" * 64, other) as kept:
            assert keyring.open_streams() == 2 and keyring.open_streams("a" * 64) == 1
            keyring.revoked("a" * 64)
            assert mine.is_set() and watch.revoked
            assert not other.is_set() and not kept.revoked
            assert keyring.is_revoked("a" * 64) and keyring.cache.get("a" * 64) is None
            keyring.resync()  # e.g. after Redis came back
            assert other.is_set() and kept.recheck and not kept.revoked
        assert keyring.open_streams() == 0
        # a stream opened just after the revocation starts revoked
        with keyring.watch("a" * 64, asyncio.Event()) as late:
            assert late.revoked

    asyncio.run(scenario())


def test_the_listener_is_off_without_redis() -> None:
    listener = RevocationListener(
        "filesystem:///tmp/broker", "q", on_revoked=print, on_resync=lambda: None
    )
    assert not listener.enabled
    assert channel("ponder") == "ponder:revoked-keys:ponder"


# ------------------------------------------------------------------ the embedded mode


@pytest.fixture
def client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings, dispatcher=dispatcher_for(sqlite_settings))) as c:
        yield c


def test_scopes_and_revocation_without_redis(client: TestClient) -> None:
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    admin = {"Authorization": f"Bearer {create_api_key(sessions, 'acme', scopes=['admin'])}"}
    made = client.post("/v1/keys", json={"scopes": ["admin"], "name": "second"}, headers=admin)
    assert made.status_code == 201, made.text
    second = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/v1/keys", headers=second).status_code == 200
    forbidden = client.get("/v1/jobs", headers=second)
    assert forbidden.status_code == 403 and forbidden.json()["missing_scope"] == "read"
    assert client.delete(f"/v1/keys/{made.json()['id']}", headers=admin).status_code == 204
    # the revoking process holds it at once (there is one process in this mode)
    assert client.get("/v1/keys", headers=second).status_code == 401


def test_ponder_keys_create_list_revoke(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ponder.cli import app as cli

    monkeypatch.setenv("PONDER_DATABASE_URL", sqlite_settings.database_url)
    monkeypatch.setenv("PONDER_BROKER_URL", sqlite_settings.broker_url)
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--tenant", "acme", "--scope", "read", "--name", "dash"]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("pk_") and "with scopes read" in made.stderr

    bad = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--scope", "write"])
    assert bad.exit_code == 2 and "unknown scope 'write'" in bad.output

    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"scopes": ["read"]' in listed.stdout and '"name": "dash"' in listed.stdout
    assert key[:11] in listed.stdout and '"revoked_at": null' in listed.stdout

    revoked = runner.invoke(cli, ["keys", "revoke", key])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked API key" in revoked.stderr and "without Redis" in revoked.stderr
    table = runner.invoke(cli, ["keys", "list", "--tenant", "acme"])
    assert table.exit_code == 0 and "dash" in table.stdout and "never" in table.stdout
    none = runner.invoke(cli, ["keys", "list", "--tenant", "nobody"])
    assert none.exit_code == 0 and "no API keys for tenant 'nobody'" in none.stderr
