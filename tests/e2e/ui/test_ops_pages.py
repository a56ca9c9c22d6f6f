"""The dashboard's Batches, Schedules and System pages in a real browser against a stack
of real processes: a batch's figures and chart match the API, a re-run shows before and
after, a schedule is triggered and backfilled from its page, the System page shows the
workers and the queue, and one tenant sees nothing of another's."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import ConsoleWatch, login
from tests.stack import Stack

pytestmark = pytest.mark.e2e

NUMBERS = [[4, 9, 10, 13], [1, 2, 3, 4], [3, 3, 8, 8], [2, 7, 8, 9]]


class Api:
    """The API as one tenant."""

    def __init__(self, stack: Stack, key: str) -> None:
        self.http = httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def get(self, path: str) -> Any:
        answer = self.http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.http.post(path, json=body)
        assert answer.status_code in (200, 201, 202), answer.text
        return answer.json()

    def batch(self, body: dict[str, Any]) -> str:
        created = self.post("/v1/batches", body)
        assert created["rejected"] == 0, created
        return str(created["id"])

    def finished_batch(self, batch_id: str, timeout: float = 180) -> dict[str, Any]:
        """The batch once every item has ended (polling its status)."""
        deadline = time.monotonic() + timeout
        while True:
            batch: dict[str, Any] = self.get(f"/v1/batches/{batch_id}")
            if batch["status"] == "completed":
                return batch
            assert time.monotonic() < deadline, f"batch {batch_id} still {batch['status']}"
            time.sleep(0.2)


def items(strategy: dict[str, Any], count: int = 4) -> list[dict[str, Any]]:
    return [
        {
            "problem": {"task": "game24", "input": {"numbers": NUMBERS[i % len(NUMBERS)]}},
            "strategy": strategy,
        }
        for i in range(count)
    ]


def count(value: float) -> str:
    """A number as the page writes it (en-US grouping, at most 3 decimals)."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def point_label(group: dict[str, Any], prefix: str = "") -> str:
    rate, tokens = group["accuracy"]["rate"], group["mean_tokens"]
    return (
        f"{prefix}{group['strategy']} on {group['model']}: {rate * 100:.1f}% accuracy at "
        f"{count(tokens)} mean tokens per item"
    )


def open_route(page: Page, stack: Stack, route: str) -> None:
    page.goto(f"{stack.api_url}/ui#{route}")


def sign_in_as(page: Page, stack: Stack, key: str) -> None:
    if page.url.startswith(stack.api_url) and page.get_by_test_id("sign-out").is_visible():
        page.get_by_test_id("sign-out").click()
    login(page, stack.api_url, key)


def test_open_a_batch_and_see_its_chart(page: Page, ui_stack: Stack, tenant_key: str) -> None:
    api = Api(ui_stack, tenant_key)
    batch_id = api.batch(
        {
            "items": items({"name": "best_of_n", "params": {"n": 2}})
            + items({"name": "self_consistency", "params": {"n": 4}}),
            "defaults": {"model": "sim"},
            "metadata": {"name": "chart-check"},
        }
    )
    figures = api.finished_batch(batch_id)
    results = api.http.get(f"/v1/batches/{batch_id}/results").text.splitlines()

    login(page, ui_stack.api_url, tenant_key)
    page.get_by_test_id("nav-batches").click()
    row = page.locator(f'[data-testid=batch-row][data-batch-id="{batch_id}"]')
    expect(row).to_contain_text("8 / 8")
    # a real link, reached and followed with the keyboard
    link = row.get_by_role("link", name="Batch chart-check")
    link.focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("page-batch").wait_for()

    chart = page.get_by_test_id("batch-chart")
    expect(chart).to_be_visible()
    expected = [
        g
        for g in figures["by_strategy"]
        if g["accuracy"]["rate"] is not None and g["mean_tokens"] is not None
    ]
    assert len(expected) == 2, figures["by_strategy"]
    points = chart.locator("circle.point")
    expect(points).to_have_count(len(expected))
    drawn = points.evaluate_all(
        "els => els.map(e => [Number(e.getAttribute('cx')), Number(e.getAttribute('cy')),"
        " e.querySelector('title').textContent])"
    )
    by_label = {label: (cx, cy) for cx, cy, label in drawn}
    assert set(by_label) == {point_label(g) for g in expected}
    # placed where the figures say: more tokens further right, more accuracy higher up
    a, b = sorted(expected, key=lambda g: g["mean_tokens"])
    (ax, ay), (bx, by) = by_label[point_label(a)], by_label[point_label(b)]
    assert ax < bx or a["mean_tokens"] == b["mean_tokens"]
    rate_a, rate_b = a["accuracy"]["rate"], b["accuracy"]["rate"]
    assert (ay > by) == (rate_a < rate_b) or rate_a == rate_b
    expect(page.get_by_test_id("batch-chart-points")).to_contain_text(point_label(a))

    expect(page.get_by_test_id("batch-progress-text")).to_have_text("8 of 8 items finished")
    expect(page.get_by_test_id("strategy-row")).to_have_count(len(figures["by_strategy"]))
    accuracy = figures["accuracy"]
    expect(page.get_by_test_id("batch-accuracy")).to_contain_text(
        f"{accuracy['verified']} of {accuracy['scored']} scored items verified"
    )
    expect(page.get_by_test_id("batch-usage")).to_contain_text(count(figures["usage"]["tokens"]))

    # the results download: fetched with the key, saved from a Blob
    with page.expect_download() as download:
        page.get_by_test_id("batch-download").click()
    saved = download.value
    assert saved.suggested_filename == f"batch-{batch_id}.jsonl"
    with open(saved.path()) as f:
        assert [json.loads(line) for line in f.read().splitlines()] == [
            json.loads(line) for line in results
        ]
    page.get_by_test_id("batch-show-items").click()
    expect(page.get_by_test_id("item-row")).to_have_count(8)


def test_a_rerun_shows_before_and_after(page: Page, ui_stack: Stack, tenant_key: str) -> None:
    api = Api(ui_stack, tenant_key)
    base = api.batch(
        {
            "items": items({"name": "best_of_n", "params": {"n": 1}}),
            "defaults": {"model": "sim"},
            "metadata": {"name": "first-try"},
        }
    )
    before = api.finished_batch(base)
    rerun = api.batch(
        {
            "from_jobs": {"batch_id": base},
            "defaults": {"strategy": {"name": "best_of_n", "params": {"n": 8}}},
            "metadata": {"name": "second-try"},
        }
    )
    after = api.finished_batch(rerun)
    comparison = after["comparison"]
    assert comparison is not None and comparison["items"] == 4

    login(page, ui_stack.api_url, tenant_key)
    open_route(page, ui_stack, f"/batches/{rerun}")
    table = page.get_by_test_id("comparison-table")
    expect(table).to_contain_text("Over 4 items")
    solved = table.locator("tbody tr").nth(0).locator("td")
    expect(solved.nth(1)).to_have_text(str(comparison["solved_before"]))
    expect(solved.nth(2)).to_have_text(str(comparison["solved_after"]))
    tokens = table.locator("tbody tr").nth(1).locator("td")
    expect(tokens.nth(1)).to_have_text(count(comparison["tokens_before"]))
    expect(tokens.nth(2)).to_have_text(count(comparison["tokens_after"]))
    expect(page.get_by_test_id("comparison-moves")).to_contain_text(
        f"{comparison['improved']} item"
    )
    expect(page.get_by_test_id("rerun-of")).to_have_attribute("href", f"#/batches/{base}")
    # the chart puts the original batch's points beside the re-run's
    old = [g for g in before["by_strategy"] if g["accuracy"]["rate"] is not None]
    before_points = page.locator('[data-testid=batch-chart] [data-series^="before:"] circle')
    expect(before_points).to_have_count(len(old))
    assert set(before_points.locator("title").all_text_contents()) == {
        point_label(g, "before: ") for g in old
    }


def local_time(page: Page, days_from_now: float) -> str:
    """A datetime-local value, in the browser's time zone, ``days_from_now`` away."""
    value: str = page.evaluate(
        """days => {
          const t = new Date(Date.now() + days * 86400000);
          const p = (n) => String(n).padStart(2, "0");
          const day = `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())}`;
          return `${day}T${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}`;
        }""",
        days_from_now,
    )
    return value


def test_trigger_and_backfill_a_schedule_from_its_page(
    page: Page, ui_stack: Stack, tenant_key: str, console: ConsoleWatch
) -> None:
    console.allow(r"status of 422")  # the refused backfill, on purpose
    api = Api(ui_stack, tenant_key)
    schedule = api.post(
        "/v1/schedules",
        {
            "name": "nightly",
            "cron": "0 3 * * *",
            "timezone": "UTC",
            "template": {
                "dataset": "game24-easy",
                "defaults": {"model": "sim", "strategy": {"name": "best_of_n", "params": {"n": 2}}},
            },
            "max_active_runs": 5,
        },
    )
    login(page, ui_stack.api_url, tenant_key)
    page.get_by_test_id("nav-schedules").click()
    page.locator(f'[data-testid=schedule-row][data-schedule-id="{schedule["id"]}"]').get_by_role(
        "link", name="nightly"
    ).click()
    fire_times = page.locator("[data-testid=next-fire-times] li")
    expect(fire_times).to_have_count(len(schedule["next_fire_times"]))
    assert [
        fire_times.nth(i).get_attribute("data-fire-time") for i in range(fire_times.count())
    ] == schedule["next_fire_times"]
    expect(page.get_by_test_id("runs-body")).to_contain_text("No run yet")

    page.get_by_test_id("schedule-trigger").click()
    batch_link = page.get_by_test_id("trigger-batch")
    expect(batch_link).to_be_visible()
    runs = api.get(f"/v1/schedules/{schedule['id']}/runs")["data"]
    assert [r["kind"] for r in runs] == ["manual"]
    expect(batch_link).to_have_attribute("href", f"#/batches/{runs[0]['batch_id']}")
    expect(page.locator("[data-testid=run-row][data-kind=manual]")).to_have_count(1)

    # a range ending in the future is refused, and the page says why, by the field
    page.get_by_test_id("backfill-start").fill(local_time(page, -3))
    page.get_by_test_id("backfill-end").fill(local_time(page, 1))
    page.get_by_test_id("backfill-submit").click()
    expect(page.get_by_test_id("backfill-end-error")).to_contain_text("is in the future")
    expect(page.get_by_test_id("backfill-result")).to_contain_text("No run was created")

    page.get_by_test_id("backfill-end").fill(local_time(page, -1))
    page.get_by_test_id("backfill-submit").click()
    expect(page.get_by_test_id("backfill-result")).to_contain_text("2 runs created")
    expect(page.get_by_test_id("backfill-end-error")).to_have_text("")
    backfilled = page.locator("[data-testid=run-row][data-kind=backfill]")
    expect(backfilled).to_have_count(2)
    runs = api.get(f"/v1/schedules/{schedule['id']}/runs")["data"]
    assert sorted(r["fire_time"] for r in runs if r["kind"] == "backfill") == sorted(
        backfilled.nth(i).get_attribute("data-fire-time") or "" for i in range(2)
    )


def busy_batch(api: Api, priority: int, size: int = 240) -> str:
    """A batch of slow items (the simulated server answers after 150 ms): most of it
    waits held while the first items run."""
    return api.batch(
        {
            "items": items({"name": "best_of_n", "params": {"n": 8}}, size),
            "defaults": {"model": "sim-http", "priority": priority},
        }
    )


def test_the_system_page_shows_the_workers_and_the_queue(
    page: Page, ui_stack: Stack, tenant_key: str
) -> None:
    api = Api(ui_stack, tenant_key)
    batch_id = busy_batch(api, priority=6)
    try:
        login(page, ui_stack.api_url, tenant_key)
        page.get_by_test_id("nav-system").click()
        # the stack's worker processes, by their heartbeat
        alive = page.locator("[data-testid=worker-row][data-alive=true]")
        expect(alive.first).to_be_visible()
        expect(alive.first).to_contain_text(socket.gethostname())
        # the batch's items wait at their priority: each figure of one snapshot adds up
        row = page.locator("[data-testid=queue-row][data-priority='6']")
        expect(row).to_be_visible()
        cells = [int(c.replace(",", "")) for c in row.locator("td").all_text_contents()[1:4]]
        waiting, held, yours = cells
        assert held > 0 and yours == waiting + held, cells
        # its running items are listed under the workers, as links to the jobs
        expect(page.get_by_test_id("worker-job").first).to_be_visible()
        href = page.get_by_test_id("worker-job").first.get_attribute("href") or ""
        job = api.get(f"/v1/jobs/{href.removeprefix('#/jobs/')}")
        assert job["batch_id"] == batch_id
        # calls in flight to the simulated server, against its limit
        expect(
            page.locator("[data-testid=model-row][data-model=sim-http] [data-testid=model-slots]")
        ).to_be_visible()
        # it refreshes by itself
        first = page.get_by_test_id("system-live").text_content()
        expect(page.get_by_test_id("system-live")).not_to_have_text(first or "")
    finally:
        api.http.post(f"/v1/batches/{batch_id}/cancel")


def test_a_tenant_sees_nothing_of_anothers_batches_schedules_or_jobs(
    page: Page, ui_stack: Stack, tenant_key: str, console: ConsoleWatch
) -> None:
    console.allow(r"status of 404")  # opening the other tenant's addresses, on purpose
    owner = Api(ui_stack, tenant_key)
    other_key = ui_stack.new_key(f"ui-other-{time.monotonic_ns()}")
    done = owner.batch({"items": items({"name": "best_of_n", "params": {"n": 1}}, 2)})
    owner.finished_batch(done)
    schedule = owner.post(
        "/v1/schedules",
        {
            "name": "private",
            "cron": "0 4 * * *",
            "template": {
                "dataset": "game24-easy",
                "defaults": {"model": "sim", "strategy": {"name": "best_of_n", "params": {"n": 2}}},
            },
        },
    )
    busy = busy_batch(owner, priority=5)
    try:
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running:  # the owner's jobs are on a worker now
            assert time.monotonic() < deadline, "no job of the busy batch started"
            running = [
                j["job_id"] for w in owner.get("/v1/system")["workers"] for j in w["your_jobs"]
            ]
        private = {done, busy, schedule["id"], *running}

        sign_in_as(page, ui_stack, other_key)
        page.get_by_test_id("nav-batches").click()
        expect(page.get_by_test_id("batches-body")).to_contain_text("No batches yet")
        page.get_by_test_id("nav-schedules").click()
        expect(page.get_by_test_id("schedules-body")).to_contain_text("No schedules yet")
        page.get_by_test_id("nav-system").click()
        expect(page.locator("[data-testid=worker-row]").first).to_be_visible()
        expect(page.get_by_test_id("worker-job")).to_have_count(0)
        html = page.content()
        assert not [thing for thing in private if thing in html]

        open_route(page, ui_stack, f"/batches/{done}")
        expect(page.get_by_test_id("note-error")).to_contain_text("There is no batch")
        open_route(page, ui_stack, f"/schedules/{schedule['id']}")
        expect(page.get_by_test_id("note-error")).to_contain_text("There is no schedule")
    finally:
        owner.http.post(f"/v1/batches/{busy}/cancel")
