"""The dashboard's shell: signing in, the pages' addresses, signing out, refused keys,
and the files it is served from."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import ConsoleWatch, login
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def test_log_in_with_a_key_and_visit_every_page(
    page: Page, ui_stack: Stack, tenant_key: str
) -> None:
    login(page, ui_stack.api_url, tenant_key)
    expect(page.get_by_test_id("nav-jobs")).to_have_attribute("aria-current", "page")
    for name in ("playground", "batches", "schedules", "system", "jobs"):
        page.get_by_test_id(f"nav-{name}").click()
        page.get_by_test_id(f"page-{name}").wait_for()
        expect(page.get_by_test_id(f"nav-{name}")).to_have_attribute("aria-current", "page")
    # the key is kept for this tab: a reload stays signed in
    page.reload()
    page.get_by_test_id("page-jobs").wait_for()
    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("login-form").wait_for()
    assert page.evaluate("sessionStorage.getItem('ponder.key')") is None


def test_a_refused_key_is_told_and_not_kept(
    page: Page, ui_stack: Stack, console: ConsoleWatch
) -> None:
    console.allow(r"status of 401")  # the browser logs the refused request
    page.goto(f"{ui_stack.api_url}/ui")
    page.get_by_test_id("login-key").fill("pk_not_a_real_key")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("note-error")).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.getItem('ponder.key')") is None


def test_the_dashboard_is_served_with_a_strict_policy(ui_stack: Stack) -> None:
    page = httpx.get(f"{ui_stack.api_url}/ui")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{ui_stack.api_url}/ui/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{ui_stack.api_url}/ui/static/%2e%2e/routes/ui.py").status_code == 404
    assert httpx.get(f"{ui_stack.api_url}/ui/static/nothing.js").status_code == 404
    paths = httpx.get(f"{ui_stack.api_url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
