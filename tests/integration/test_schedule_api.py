"""``/v1/schedules`` over HTTP against real Postgres: creating, reading, listing,
changing and deleting schedules, triggers, backfills, tenant isolation, and a clear 4xx
for every kind of bad input."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.schedules.store import tick
from ponder.tables import Batch, Schedule, ScheduleRun
from tests.api_helpers import assert_problem, auth_headers
from tests.schedule_helpers import TEMPLATE, finish_batches, launcher, tenant_with_dataset

pytestmark = pytest.mark.integration

PAST_DAY = datetime(2026, 1, 5, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    """A valid schedule body with top-level fields replaced (``...`` removes one)."""
    out: dict[str, Any] = {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Paris",
        "template": copy.deepcopy(TEMPLATE),
    }
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def sessions(client: TestClient) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    return factory


@pytest.fixture
def acme(client: TestClient, sessions: sessionmaker[Session]) -> dict[str, str]:
    """Headers of tenant acme, which owns the dataset ``tiny``."""
    headers = auth_headers(client, "acme")
    tenant_with_dataset(sessions, "acme")
    return headers


@pytest.fixture
def other(client: TestClient, sessions: sessionmaker[Session]) -> dict[str, str]:
    headers = auth_headers(client, "globex")
    tenant_with_dataset(sessions, "globex")
    return headers


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/schedules", json=body(**changes), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def runs_in_db(sessions: sessionmaker[Session], schedule_id: str) -> list[ScheduleRun]:
    with sessions() as s:
        return list(
            s.scalars(
                select(ScheduleRun)
                .where(ScheduleRun.schedule_id == schedule_id)
                .order_by(ScheduleRun.fire_time)
            )
        )


# ---------------------------------------------------------------- create and read


def test_create_returns_the_schedule_and_its_next_fire_times(
    client: TestClient, acme: dict[str, str]
) -> None:
    before = datetime.now(UTC)
    response = client.post("/v1/schedules", json=body(), headers=acme)
    assert response.status_code == 201, response.text
    doc = response.json()
    assert response.headers["location"] == f"/v1/schedules/{doc['id']}"
    assert doc["name"] == "nightly"
    assert doc["cron"] == "30 2 * * *"
    assert doc["timezone"] == "Europe/Paris"
    assert doc["template"]["dataset"] == "tiny"
    assert doc["template"]["defaults"]["strategy"]["name"] == "best_of_n"
    assert (doc["catchup"], doc["max_active_runs"], doc["enabled"]) == (False, 1, True)
    assert (doc["start_time"], doc["end_time"], doc["last_fire_time"]) == (None, None, None)
    assert (doc["recent_runs"], doc["pending_runs"], doc["active_runs"]) == ([], 0, 0)
    upcoming = [datetime.fromisoformat(t) for t in doc["next_fire_times"]]
    assert len(upcoming) == 5
    assert upcoming == sorted(upcoming) and upcoming[0] > before
    for fire in upcoming:  # 02:30 on Paris clocks, whatever the season
        assert fire.utcoffset() == timedelta(0)
        paris = fire.astimezone(ZoneInfo("Europe/Paris"))
        assert (paris.hour, paris.minute) == (2, 30)
    assert client.get(f"/v1/schedules/{doc['id']}", headers=acme).json() == doc


def test_defaults_and_normalised_values(client: TestClient, acme: dict[str, str]) -> None:
    doc = create(
        client,
        acme,
        cron="  */15   9-17 * *  mon-fri ",
        timezone=...,
        end_time="2999-01-01T01:00:00+01:00",
    )
    assert doc["cron"] == "*/15 9-17 * * mon-fri"
    assert doc["timezone"] == "UTC"
    assert doc["end_time"] == "2999-01-01T00:00:00Z"  # stored and shown in UTC


@pytest.mark.parametrize(
    ("cron", "phrase"),
    [
        ("61 * * * *", "'61 * * * *': minute must be 0-59, got 61"),
        ("* 25 * * *", "hour must be 0-23, got 25"),
        ("* * * *", "has 4 fields"),
        ("0 0 * * * *", "no seconds or year field"),
        ("0 0 30 2 *", "never fires"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "reversed"),
        ("@reboot", "not a known alias"),
        ("", "is empty"),
        ("0 0 L * *", "day-of-month must be a number 1-31, got 'L'"),
        ("x" * 201, "at most 200 characters"),
    ],
)
def test_bad_cron_is_a_422_naming_the_problem(
    client: TestClient, acme: dict[str, str], cron: str, phrase: str
) -> None:
    response = client.post("/v1/schedules", json=body(cron=cron), headers=acme)
    doc = assert_problem(response, 422, "cron", phrase)
    assert doc["errors"][0]["loc"] == ["body", "cron"]


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "europe/paris", "", "localtime", "+01:00"])
def test_bad_timezone_is_a_422_naming_the_field(
    client: TestClient, acme: dict[str, str], timezone: str
) -> None:
    response = client.post("/v1/schedules", json=body(timezone=timezone), headers=acme)
    doc = assert_problem(response, 422, "body.timezone", "unknown time zone", "IANA")
    assert doc["errors"][0]["loc"] == ["body", "timezone"]


@pytest.mark.parametrize(
    ("template", "phrases"),
    [
        ({"defaults": TEMPLATE["defaults"]}, ["give exactly one of `dataset`, `from_jobs`"]),
        (
            {**TEMPLATE, "from_jobs": {"status": ["completed"]}},
            ["`dataset` and `from_jobs`"],
        ),
        ({**TEMPLATE, "dataset": "no-such-dataset"}, ["template:", "unknown dataset"]),
        (
            {"dataset": "tiny", "defaults": {"strategy": {"name": "nope"}}},
            ["template:", "unknown strategy 'nope'"],
        ),
        (
            {"dataset": "tiny", "defaults": {**TEMPLATE["defaults"], "model": "gpt-nope"}},
            ["template:", "unknown model 'gpt-nope'"],
        ),
        ({"dataset": "tiny"}, ["template:", "strategy"]),  # no strategy for the items
        ({"from_jobs": {"status": ["completed"]}}, ["template:", "matched no jobs"]),
        ({**TEMPLATE, "items": [{}]}, ["template.items", "unknown field"]),
        ({**TEMPLATE, "budget": {}}, ["template.budget"]),
        ({**TEMPLATE, "webhook_url": "ftp://x"}, ["template.webhook_url", "http"]),
        ("tiny", ["template"]),
    ],
)
def test_bad_template_is_a_422(
    client: TestClient, acme: dict[str, str], template: Any, phrases: list[str]
) -> None:
    response = client.post("/v1/schedules", json=body(template=template), headers=acme)
    assert_problem(response, 422, *phrases)


@pytest.mark.parametrize(
    ("changes", "phrases"),
    [
        ({"name": ""}, ["body.name"]),
        ({"name": "   "}, ["body.name", "must not be blank"]),
        ({"name": "a" * 201}, ["body.name", "200"]),
        ({"name": "tab\there"}, ["body.name", "control characters"]),
        ({"name": ...}, ["body.name", "required"]),
        ({"cron": ...}, ["body.cron", "required"]),
        ({"template": ...}, ["body.template", "required"]),
        ({"cron": 5}, ["body.cron"]),
        ({"max_active_runs": 0}, ["body.max_active_runs", "greater than or equal to 1"]),
        ({"max_active_runs": 101}, ["body.max_active_runs", "less than or equal to 100"]),
        ({"max_active_runs": "2"}, ["body.max_active_runs"]),
        ({"max_active_runs": 1.5}, ["body.max_active_runs"]),
        ({"max_active_runs": True}, ["body.max_active_runs"]),
        ({"catchup": "yes"}, ["body.catchup"]),
        ({"catchup": 1}, ["body.catchup"]),
        ({"enabled": None}, ["body.enabled"]),
        ({"start_time": "2026-01-01T00:00:00"}, ["body.start_time", "UTC offset"]),
        ({"end_time": "soon"}, ["body.end_time"]),
        ({"end_time": "3500-01-01T00:00:00Z"}, ["body.end_time", "between the years"]),
        (
            {"start_time": "2999-01-02T00:00:00Z", "end_time": "2999-01-01T00:00:00Z"},
            ["start_time must not be later than end_time"],
        ),
        ({"end_time": "2020-01-01T00:00:00Z"}, ["body.end_time", "would never fire"]),
        (
            {
                "cron": "0 0 1 1 *",
                "start_time": "2998-06-01T00:00:00Z",
                "end_time": "2998-12-31T00:00:00Z",
            },
            ["would never fire"],
        ),
        ({"colour": "blue"}, ["body.colour", "unknown field"]),
    ],
)
def test_every_bad_field_is_a_422(
    client: TestClient, acme: dict[str, str], changes: dict[str, Any], phrases: list[str]
) -> None:
    response = client.post("/v1/schedules", json=body(**changes), headers=acme)
    assert_problem(response, 422, *phrases)


def test_bodies_that_are_not_a_json_object(client: TestClient, acme: dict[str, str]) -> None:
    assert_problem(
        client.post("/v1/schedules", content=b"name=x", headers=acme), 415, "Content-Type"
    )
    assert_problem(
        client.post(
            "/v1/schedules",
            content=b"{not json",
            headers={**acme, "Content-Type": "application/json"},
        ),
        422,
        "not valid JSON",
    )
    assert_problem(client.post("/v1/schedules", json=[body()], headers=acme), 422, "JSON object")


def test_auth_is_required(client: TestClient) -> None:
    assert_problem(client.post("/v1/schedules", json=body()), 401, "API key")
    assert_problem(client.get("/v1/schedules"), 401, "API key")
    assert_problem(
        client.get("/v1/schedules", headers={"Authorization": "Bearer pk_wrong"}), 401, "invalid"
    )


def test_names_are_unique_per_tenant(
    client: TestClient, acme: dict[str, str], other: dict[str, str]
) -> None:
    first = create(client, acme)
    response = client.post("/v1/schedules", json=body(), headers=acme)
    assert_problem(response, 409, "'nightly' already exists", first["id"])
    create(client, other)  # another tenant may use the same name


# ---------------------------------------------------------------- list


def test_list_pages_newest_first_and_filters(client: TestClient, acme: dict[str, str]) -> None:
    ids = [create(client, acme, name=f"s{i}", enabled=i != 1)["id"] for i in range(3)]
    page = client.get("/v1/schedules", params={"limit": 2}, headers=acme).json()
    assert [s["id"] for s in page["data"]] == [ids[2], ids[1]]
    assert page["next_cursor"]
    rest = client.get(
        "/v1/schedules", params={"limit": 2, "cursor": page["next_cursor"]}, headers=acme
    ).json()
    assert [s["id"] for s in rest["data"]] == [ids[0]]
    assert rest["next_cursor"] is None
    paused = client.get("/v1/schedules", params={"enabled": "false"}, headers=acme).json()
    assert [s["id"] for s in paused["data"]] == [ids[1]]
    assert paused["data"][0]["next_fire_times"] == []
    assert "recent_runs" not in paused["data"][0]


@pytest.mark.parametrize("cursor", ["garbage", "x" * 300, "WyJub3QtYS1kYXRlIiwiMSJd"])
def test_list_refuses_a_bad_cursor(client: TestClient, acme: dict[str, str], cursor: str) -> None:
    response = client.get("/v1/schedules", params={"cursor": cursor}, headers=acme)
    assert_problem(response, 422, "query.cursor", "not a valid cursor")


def test_list_refuses_bad_limits(client: TestClient, acme: dict[str, str]) -> None:
    for limit in ("0", "201", "ten"):
        response = client.get("/v1/schedules", params={"limit": limit}, headers=acme)
        assert_problem(response, 422, "query.limit")


# ---------------------------------------------------------------- tenants


def test_another_tenants_schedule_is_a_404_everywhere(
    client: TestClient, acme: dict[str, str], other: dict[str, str]
) -> None:
    schedule_id = create(client, acme)["id"]
    base = f"/v1/schedules/{schedule_id}"
    backfill = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    for response in (
        client.get(base, headers=other),
        client.patch(base, json={"enabled": False}, headers=other),
        client.delete(base, headers=other),
        client.post(f"{base}/trigger", headers=other),
        client.post(f"{base}/backfill", json=backfill, headers=other),
        client.get(f"{base}/runs", headers=other),
    ):
        assert_problem(response, 404, "no schedule with id", "this API key's tenant")
    assert client.get("/v1/schedules", headers=other).json()["data"] == []
    # still there, untouched, for its owner
    doc = client.get(base, headers=acme).json()
    assert doc["enabled"] is True and doc["recent_runs"] == []


@pytest.mark.parametrize("schedule_id", ["nope", "1" * 100, "00000000-0000-0000-0000-000000000000"])
def test_unknown_ids_are_a_404(client: TestClient, acme: dict[str, str], schedule_id: str) -> None:
    assert_problem(client.get(f"/v1/schedules/{schedule_id}", headers=acme), 404, "no schedule")


# ---------------------------------------------------------------- update and delete


def test_patch_changes_timing_and_restarts_from_now(
    client: TestClient, acme: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    doc = create(client, acme, cron="0 * * * *", timezone="UTC")
    base = f"/v1/schedules/{doc['id']}"
    changed = client.patch(
        base, json={"cron": "0 12 * * *", "timezone": "Asia/Tokyo"}, headers=acme
    )
    assert changed.status_code == 200, changed.text
    got = changed.json()
    assert (got["cron"], got["timezone"]) == ("0 12 * * *", "Asia/Tokyo")
    for fire in got["next_fire_times"]:
        assert datetime.fromisoformat(fire).hour == 3  # noon in Tokyo
    assert got["updated_at"] > doc["updated_at"]

    # pause: nothing upcoming; resume: fire times missed while paused are not caught up
    assert client.patch(base, json={"enabled": False}, headers=acme).json()["next_fire_times"] == []
    with sessions() as s, s.begin():
        s.execute(
            update(Schedule)
            .where(Schedule.id == doc["id"])
            .values(next_fire_time=datetime.now(UTC) - timedelta(days=3))
        )
    resumed = client.patch(base, json={"enabled": True}, headers=acme).json()
    assert len(resumed["next_fire_times"]) == 5
    with sessions() as s:
        row = s.get(Schedule, doc["id"])
        assert row is not None and row.next_fire_time is not None
        assert row.next_fire_time > datetime.now(UTC)


def test_patch_end_time_and_start_time(client: TestClient, acme: dict[str, str]) -> None:
    doc = create(client, acme, cron="0 0 * * *", timezone="UTC")
    base = f"/v1/schedules/{doc['id']}"
    start = (datetime.now(UTC) + timedelta(days=10)).replace(hour=0, minute=0, second=0)
    start = start.replace(microsecond=0)
    got = client.patch(
        base,
        json={"start_time": start.isoformat(), "end_time": (start + timedelta(days=2)).isoformat()},
        headers=acme,
    ).json()
    assert got["next_fire_times"] == [
        (start + timedelta(days=d)).isoformat().replace("+00:00", "Z") for d in range(3)
    ]
    cleared = client.patch(base, json={"start_time": None, "end_time": None}, headers=acme).json()
    assert (cleared["start_time"], cleared["end_time"]) == (None, None)
    assert len(cleared["next_fire_times"]) == 5
    # an end before the (kept) start, in two steps
    kept = client.patch(base, json={"start_time": start.isoformat()}, headers=acme)
    assert kept.status_code == 200, kept.text
    response = client.patch(
        base, json={"end_time": (start - timedelta(days=1)).isoformat()}, headers=acme
    )
    assert_problem(response, 422, "start_time must not be later than end_time")


@pytest.mark.parametrize(
    ("patch", "phrases"),
    [
        ({"cron": None}, ["body.cron", "cannot be null"]),
        ({"name": None}, ["body.name", "cannot be null"]),
        ({"timezone": None}, ["body.timezone", "cannot be null"]),
        ({"template": None}, ["body.template", "cannot be null"]),
        ({"catchup": None}, ["body.catchup", "cannot be null"]),
        ({"max_active_runs": None}, ["body.max_active_runs", "cannot be null"]),
        ({"enabled": None}, ["body.enabled", "cannot be null"]),
        ({"cron": "61 * * * *"}, ["minute must be 0-59"]),
        ({"timezone": "Nowhere/Land"}, ["unknown time zone"]),
        ({"template": {"dataset": "missing", "defaults": {}}}, ["template:", "unknown dataset"]),
        ({"max_active_runs": 0}, ["body.max_active_runs"]),
        ({"end_time": "2020-01-01T00:00:00Z"}, ["would never fire"]),
        ({"end_time": "2030-01-01T00:00:00"}, ["UTC offset"]),
        ({"id": "x"}, ["body.id", "unknown field"]),
    ],
)
def test_patch_refuses_bad_changes(
    client: TestClient, acme: dict[str, str], patch: dict[str, Any], phrases: list[str]
) -> None:
    doc = create(client, acme)
    response = client.patch(f"/v1/schedules/{doc['id']}", json=patch, headers=acme)
    assert_problem(response, 422, *phrases)
    assert client.get(f"/v1/schedules/{doc['id']}", headers=acme).json() == doc  # unchanged


def test_patch_rename_and_nothing(client: TestClient, acme: dict[str, str]) -> None:
    first = create(client, acme, name="a")
    second = create(client, acme, name="b")
    response = client.patch(f"/v1/schedules/{second['id']}", json={"name": "a"}, headers=acme)
    assert_problem(response, 409, "'a' already exists", first["id"])
    renamed = client.patch(f"/v1/schedules/{second['id']}", json={"name": "c"}, headers=acme)
    assert renamed.json()["name"] == "c"
    same = client.patch(f"/v1/schedules/{first['id']}", json={}, headers=acme)
    assert same.status_code == 200
    assert same.json()["next_fire_times"] == first["next_fire_times"]
    assert_problem(client.patch(f"/v1/schedules/{first['id']}", content=b"x", headers=acme), 415)


def test_delete_removes_the_schedule_and_its_pending_runs(
    client: TestClient, acme: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    doc = create(client, acme)
    base = f"/v1/schedules/{doc['id']}"
    started = client.post(f"{base}/trigger", headers=acme).json()
    waiting = client.post(f"{base}/trigger", headers=acme)  # waits: max_active_runs is 1
    assert waiting.status_code == 202 and waiting.json()["status"] == "pending", waiting.text
    response = client.delete(base, headers=acme)
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get(base, headers=acme), 404)
    assert_problem(client.delete(base, headers=acme), 404)
    assert runs_in_db(sessions, doc["id"]) == []
    with sessions() as s:  # the batch already started is an ordinary batch and stays
        assert s.get(Batch, started["batch_id"]) is not None


# ---------------------------------------------------------------- trigger


def test_trigger_starts_a_manual_run_now_within_max_active_runs(
    client: TestClient, acme: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    doc = create(client, acme, enabled=False)  # paused schedules can still be triggered
    base = f"/v1/schedules/{doc['id']}"
    before = datetime.now(UTC)
    response = client.post(f"{base}/trigger", headers=acme)
    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["kind"], run["status"], run["schedule_id"]) == ("manual", "started", doc["id"])
    assert datetime.fromisoformat(run["fire_time"]) >= before
    with sessions() as s:
        batch = s.get(Batch, run["batch_id"])
        assert batch is not None
        assert (batch.schedule_id, batch.item_count) == (doc["id"], 2)
    second = client.post(f"{base}/trigger", headers=acme).json()
    assert (second["status"], second["batch_id"]) == ("pending", None)
    detail = client.get(base, headers=acme).json()
    assert (detail["pending_runs"], detail["active_runs"]) == (1, 1)
    assert [r["id"] for r in detail["recent_runs"]] == [second["id"], run["id"]]
    assert detail["last_fire_time"] is None  # triggers are not cron fire times

    # raising max_active_runs lets the waiting run start at once
    raised = client.patch(base, json={"max_active_runs": 2}, headers=acme).json()
    assert (raised["pending_runs"], raised["active_runs"]) == (0, 2)


# ---------------------------------------------------------------- backfill


def test_backfill_makes_one_run_per_fire_time_oldest_first(
    client: TestClient,
    acme: dict[str, str],
    sessions: sessionmaker[Session],
    pg_settings: Settings,
) -> None:
    doc = create(client, acme, cron="0 */2 * * *", timezone="UTC", max_active_runs=2)
    base = f"/v1/schedules/{doc['id']}"
    window = {"start": "2026-01-05T01:00:00Z", "end": "2026-01-05T10:00:00+00:00"}
    response = client.post(f"{base}/backfill", json=window, headers=acme)
    assert response.status_code == 202, response.text
    got = response.json()
    assert (got["created"], got["existing"]) == (5, 0)
    expected = [PAST_DAY.replace(hour=h) for h in (2, 4, 6, 8, 10)]
    assert [datetime.fromisoformat(r["fire_time"]) for r in got["runs"]] == expected
    assert {r["kind"] for r in got["runs"]} == {"backfill"}
    assert [r["status"] for r in got["runs"]] == ["started"] * 2 + ["pending"] * 3

    # as batches finish, the oldest waiting runs start, two at a time at most
    runs = runs_in_db(sessions, doc["id"])
    finish_batches(sessions, [runs[0].batch_id])
    tick(sessions, launcher(pg_settings), now=datetime.now(UTC))
    assert [r.status for r in runs_in_db(sessions, doc["id"])] == ["started"] * 3 + ["pending"] * 2
    finish_batches(sessions, [r.batch_id for r in runs_in_db(sessions, doc["id"])])
    tick(sessions, launcher(pg_settings), now=datetime.now(UTC))
    runs = runs_in_db(sessions, doc["id"])
    assert [r.status for r in runs] == ["started"] * 5
    started_order = sorted(runs, key=lambda r: (r.started_at, r.fire_time))
    assert [r.fire_time for r in started_order] == expected

    # an overlapping backfill keeps the runs that exist: a fire time runs at most once
    again = client.post(
        f"{base}/backfill",
        json={"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T14:00:00Z"},
        headers=acme,
    ).json()
    assert (again["created"], again["existing"]) == (2, 2)
    assert [datetime.fromisoformat(r["fire_time"]).hour for r in again["runs"]] == [8, 10, 12, 14]
    assert len(runs_in_db(sessions, doc["id"])) == 7


def test_backfill_in_a_time_zone_uses_local_fire_times(
    client: TestClient, acme: dict[str, str]
) -> None:
    doc = create(client, acme, cron="30 2 * * *", timezone="America/New_York", max_active_runs=5)
    got = client.post(
        f"/v1/schedules/{doc['id']}/backfill",
        json={"start": "2025-03-08T00:00:00Z", "end": "2025-03-10T23:00:00Z"},
        headers=acme,
    ).json()
    assert [r["fire_time"] for r in got["runs"]] == [
        "2025-03-08T07:30:00Z",  # 02:30 EST
        "2025-03-09T07:00:00Z",  # the spring-forward day: 03:00 EDT
        "2025-03-10T06:30:00Z",  # 02:30 EDT
    ]


@pytest.mark.parametrize(
    ("window", "phrases"),
    [
        (
            {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
            ["more than 1000 times", "split the range"],
        ),
        ({"start": "2026-01-05T00:00:00Z", "end": "2999-01-01T00:00:00Z"}, ["body.end", "future"]),
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-04T00:00:00Z"}, ["start must not be"]),
        (
            {"start": "2026-01-05T00:00:30Z", "end": "2026-01-05T00:00:50Z"},
            ["no fire time between"],
        ),
        ({"start": "2026-01-05T00:00:00", "end": "2026-01-05T01:00:00Z"}, ["body.start", "offset"]),
        ({"start": "1900-01-01T00:00:00Z", "end": "1900-01-02T00:00:00Z"}, ["between the years"]),
        ({"start": "2026-01-05T00:00:00Z"}, ["body.end", "required"]),
        ({"end": "2026-01-05T00:00:00Z"}, ["body.start", "required"]),
        ({"start": "yesterday", "end": "today"}, ["body.start", "body.end"]),
        (
            {"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T01:00:00Z", "kind": "x"},
            ["body.kind", "unknown field"],
        ),
    ],
)
def test_backfill_refuses_bad_ranges(
    client: TestClient, acme: dict[str, str], window: dict[str, Any], phrases: list[str]
) -> None:
    doc = create(client, acme, cron="* * * * *", timezone="UTC")
    response = client.post(f"/v1/schedules/{doc['id']}/backfill", json=window, headers=acme)
    assert_problem(response, 422, *phrases)
    assert client.get(f"/v1/schedules/{doc['id']}/runs", headers=acme).json()["data"] == []


def test_backfill_of_exactly_the_limit_is_accepted(
    client: TestClient, acme: dict[str, str]
) -> None:
    doc = create(client, acme, cron="* * * * *", timezone="UTC", max_active_runs=1)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    got = client.post(
        f"/v1/schedules/{doc['id']}/backfill",
        json={"start": start.isoformat(), "end": (start + timedelta(minutes=999)).isoformat()},
        headers=acme,
    ).json()
    assert got["created"] == 1000
    assert [r["status"] for r in got["runs"]].count("started") == 1


# ---------------------------------------------------------------- runs


def test_runs_list_pages_newest_fire_time_first(client: TestClient, acme: dict[str, str]) -> None:
    doc = create(client, acme, cron="0 * * * *", timezone="UTC", max_active_runs=1)
    base = f"/v1/schedules/{doc['id']}"
    backfilled = client.post(
        f"{base}/backfill",
        json={"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T04:00:00Z"},
        headers=acme,
    )
    assert backfilled.status_code == 202, backfilled.text
    page = client.get(f"{base}/runs", params={"limit": 3}, headers=acme).json()
    assert [r["fire_time"][11:13] for r in page["data"]] == ["04", "03", "02"]
    rest = client.get(
        f"{base}/runs", params={"limit": 3, "cursor": page["next_cursor"]}, headers=acme
    ).json()
    assert [r["fire_time"][11:13] for r in rest["data"]] == ["01", "00"]
    assert rest["next_cursor"] is None
    started = client.get(f"{base}/runs", params={"status": "started"}, headers=acme).json()
    assert [r["fire_time"][11:13] for r in started["data"]] == ["00"]
    assert_problem(client.get(f"{base}/runs", params={"status": "done"}, headers=acme), 422)
    assert_problem(client.get(f"{base}/runs", params={"cursor": "zz"}, headers=acme), 422)


# ---------------------------------------------------------------- documentation


def test_every_schedule_endpoint_and_field_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/schedules")
        for method, op in item.items()
    ]
    assert len(operations) == 8
    for path, method, op in operations:
        assert op.get("summary") and op.get("description"), (method, path)
        for parameter in op.get("parameters", []):
            if parameter["in"] == "query":
                assert parameter.get("description"), (method, path, parameter["name"])
    components = schema["components"]["schemas"]
    for name in (
        "ScheduleCreate",
        "ScheduleUpdate",
        "SchedulePublic",
        "ScheduleDetail",
        "SchedulesPublic",
        "ScheduleRunPublic",
        "ScheduleRunsPublic",
        "BackfillRequest",
        "BackfillPublic",
    ):
        model = components[name]
        assert model.get("description"), name
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field}"
