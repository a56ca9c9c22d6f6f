"""The job pages in a real browser against real processes: the playground submits a job
that the page then follows live to its end; a tree search's page shows every node of
its trace; a running job is cancelled from its page; a webhook delivery is sent again;
one tenant sees nothing of another's; no page logs an error."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import PHONE, ConsoleWatch, client, login, submit, wait_finished
from tests.stack import Stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.e2e

GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}


def job_body(strategy: str, params: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "problem": GAME24,
        "strategy": {"name": strategy, "params": params},
        "model": "sim",
        "budget": {"max_tokens": 500_000, "max_calls": 5000},
        "seed": 1,
        **more,
    }


def test_submit_from_the_playground_and_watch_it_finish_live(
    page: Page, ui_stack: Stack, tenant_key: str
) -> None:
    login(page, ui_stack.api_url, tenant_key)
    page.get_by_test_id("nav-playground").click()
    page.get_by_test_id("playground-form").wait_for()
    # sim-http answers after 150 ms: 16 calls one after the other keep it running a while
    page.get_by_test_id("model").select_option("sim-http")
    page.get_by_test_id("strategy").select_option("best_of_n")
    page.get_by_test_id("param-n").fill("16")
    page.get_by_test_id("param-batch_size").fill("1")
    page.get_by_test_id("param-stop_when_verified").uncheck()
    expect(page.get_by_test_id("request-preview")).to_contain_text('"batch_size": 1')
    page.get_by_test_id("submit-job").click()

    page.wait_for_url("**/ui#/jobs/*")
    job_id = page.url.rsplit("/", 1)[1].split("?")[0]
    page.evaluate("window.ponderSamePage = true")  # gone if the page reloads
    status = page.get_by_test_id("job-status")
    expect(status).to_have_attribute("data-status", "running")
    expect(status).to_have_attribute("data-status", "completed", timeout=90_000)
    assert page.evaluate("window.ponderSamePage") is True

    # everything arrived live: the 16 candidates, the curve, the final spend
    expect(page.get_by_test_id("candidate-row")).to_have_count(16)
    expect(page.get_by_test_id("curve-chart")).to_be_visible()
    expect(page.get_by_test_id("answer")).to_contain_text("verified")
    job = client(ui_stack, tenant_key).get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["strategy"]["params"]["n"] == 16
    expect(page.locator("[data-testid=gauge-tokens] [role=meter]")).to_have_attribute(
        "aria-valuenow", str(job["usage"]["tokens"])
    )
    page.get_by_test_id("tab-calls").click()
    expect(page.locator("[data-testid=call-row]")).not_to_have_count(0)
    expect(page.get_by_test_id("calls-summary")).to_contain_text(
        f"{job['usage']['calls']} to the model"
    )


def test_the_playground_shows_why_a_job_was_refused(
    page: Page, ui_stack: Stack, tenant_key: str, console: ConsoleWatch
) -> None:
    console.allow(r"status of 422")  # the browser logs the refused request
    login(page, ui_stack.api_url, tenant_key)
    page.goto(f"{ui_stack.api_url}/ui#/playground?strategy=best_of_n")
    page.get_by_test_id("param-n").fill("0")
    page.get_by_test_id("submit-job").click()
    errors = page.get_by_test_id("submit-errors")
    expect(errors).to_contain_text("not accepted")
    expect(page.get_by_test_id("submit-error-list")).to_contain_text("strategy.params")
    expect(page.locator('[data-error-for="strategy.params.n"]')).not_to_be_empty()
    assert "#/playground" in page.url  # no job: still on the form


def test_a_tree_search_shows_every_node_of_its_trace(
    page: Page, ui_stack: Stack, tenant_key: str
) -> None:
    http = client(ui_stack, tenant_key)
    job_id = submit(
        http,
        job_body(
            "mcts",
            {"iterations": 3000, "expand_k": 8, "c": 4.0},
            problem={"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        ),
    )
    job = wait_finished(http, job_id)
    trace = http.get(f"/v1/jobs/{job_id}/trace").json()
    nodes = {e["data"]["id"] for e in trace["events"] if e["kind"] == "node"}
    assert nodes

    login(page, ui_stack.api_url, tenant_key)
    page.goto(f"{ui_stack.api_url}/ui#/jobs/{job_id}")
    count = page.get_by_test_id("tree-count")
    expect(count).to_have_attribute("data-count", str(len(nodes)))
    # the outline opens the winning path only: a few dozen rows, not every node
    rows = page.get_by_test_id("tree-node")
    shown = rows.count()
    assert 0 < shown < len(nodes)
    if job["result"] and job["result"]["verified"]:
        win = page.locator("[data-testid=tree-node][data-win=true]")
        expect(win.first).to_be_visible()
        assert win.count() >= 2  # the root and the leaf at least
    page.get_by_test_id("tree-open-all").click()
    expect(rows).not_to_have_count(shown)


def test_cancel_a_running_job_from_its_page(page: Page, ui_stack: Stack, tenant_key: str) -> None:
    http = client(ui_stack, tenant_key)
    # 2000 calls at 150 ms each: running for minutes unless cancelled
    job_id = submit(
        http,
        job_body(
            "best_of_n",
            {"n": 2000, "batch_size": 1, "stop_when_verified": False},
            model="sim-http",
        ),
    )
    login(page, ui_stack.api_url, tenant_key)
    page.goto(f"{ui_stack.api_url}/ui#/jobs/{job_id}")
    status = page.get_by_test_id("job-status")
    expect(status).to_have_attribute("data-status", "running")
    expect(page.get_by_test_id("candidate-row").first).to_be_visible()

    page.get_by_test_id("cancel-job").click()
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("ancel")
    expect(status).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_test_id("cancel-job")).to_have_count(0)
    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["stop_reason"] == "cancelled"
    assert job["usage"]["calls"] < 2000


def test_redeliver_a_webhook_from_the_job_page(
    page: Page, ui_stack: Stack, tenant_key: str
) -> None:
    receiver = Receiver(parse_plan("200"))
    url = receiver.start()
    try:
        http = client(ui_stack, tenant_key)
        job_id = submit(http, job_body("best_of_n", {"n": 2}, webhook_url=f"{url}/hook"))
        wait_finished(http, job_id)
        first = receiver.wait_for(1)[0]

        login(page, ui_stack.api_url, tenant_key)
        page.goto(f"{ui_stack.api_url}/ui#/jobs/{job_id}?tab=webhooks")
        row = page.get_by_test_id("delivery-row")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("job.completed")
        expect(row.locator("[data-status=delivered]")).to_be_visible()
        row.get_by_test_id("redeliver").click()
        expect(row).to_contain_text("Sent again")
        again = receiver.wait_for(2)[1]
        assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"]
        # the list is read again: the redelivery's attempt shows
        expect(page.get_by_test_id("delivery-attempts")).to_have_text("2")
    finally:
        receiver.stop()


def test_a_second_tenant_sees_none_of_the_first_tenants_jobs(
    page: Page, ui_stack: Stack, tenant_key: str, console: ConsoleWatch
) -> None:
    http = client(ui_stack, tenant_key)
    mine = [submit(http, job_body("best_of_n", {"n": 2})) for _ in range(2)]
    for job_id in mine:
        wait_finished(http, job_id)
    other = ui_stack.new_key(f"ui-other-{uuid.uuid4().hex[:8]}")

    login(page, ui_stack.api_url, other)
    expect(page.get_by_test_id("note-empty")).to_contain_text("No jobs yet")
    expect(page.get_by_test_id("job-row")).to_have_count(0)
    console.allow(r"status of 404")  # the browser logs the refused read
    page.goto(f"{ui_stack.api_url}/ui#/jobs/{mine[0]}")
    expect(page.get_by_test_id("page-job")).to_contain_text("Job not found")
    expect(page.get_by_test_id("job-status")).to_have_count(0)

    # the first tenant's own key sees both
    page.get_by_test_id("sign-out").click()
    login(page, ui_stack.api_url, tenant_key)
    expect(page.get_by_test_id("job-row")).to_have_count(2)
    listed = {row.get_attribute("data-job-id") for row in page.get_by_test_id("job-row").all()}
    assert listed == set(mine)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_no_page_logs_an_error(page: Page, ui_stack: Stack, tenant_key: str, viewport: str) -> None:
    """Every page and every tab of a job, at both sizes; the ``page`` fixture fails the
    test on any console error (a 404 included) or uncaught exception."""
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    http = client(ui_stack, tenant_key)
    job_id = submit(http, job_body("beam_search", {}))
    wait_finished(http, job_id)
    login(page, ui_stack.api_url, tenant_key)
    for name in ("playground", "batches", "schedules", "system", "jobs"):
        page.get_by_test_id(f"nav-{name}").click()
        page.get_by_test_id(f"page-{name}").wait_for()
        expect(page.locator("[data-page] .note-loading")).to_have_count(0)
    expect(page.get_by_test_id("job-row")).to_have_count(1)
    page.get_by_test_id("filter-status").select_option("completed")
    expect(page.get_by_test_id("job-row")).to_have_count(1)
    page.get_by_test_id("filter-status").select_option("failed")
    expect(page.get_by_test_id("note-empty")).to_contain_text("No jobs match")
    page.get_by_test_id("filter-status").select_option("")
    page.locator(f"[data-job-id='{job_id}'] a").click()
    page.get_by_test_id("page-job").wait_for()
    for tab in ("tree", "candidates", "calls", "events", "webhooks"):
        page.get_by_test_id(f"tab-{tab}").click()
        expect(page.get_by_test_id(f"panel-{tab}")).to_be_visible()
        expect(page.get_by_test_id(f"panel-{tab}").locator(".note-loading")).to_have_count(0)
    # nothing is wider than the screen but the tables that scroll inside their card
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
