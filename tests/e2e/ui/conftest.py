"""Browser tests of the dashboard (/ui): a headless Chromium (the system's, driven by
Playwright) against a stack of real processes.

One stack for all the tests of this folder (starting one costs seconds); tests keep
apart by using their own tenant (``tenant_key``), which sees nothing of the others'."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from sqlalchemy.orm import Session, sessionmaker

from ponder.auth import create_api_key
from ponder.db import make_engine, make_sessionmaker
from tests.conftest import _admin_exec, _pg_url
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# how long a browser expectation waits by default (a job on a loaded machine is slow)
EXPECT_MS = 30_000
expect.set_options(timeout=EXPECT_MS)
FINAL = ("completed", "failed", "cancelled")


# Package scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every later test calling asyncio.run() would fail.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)",
            pytrace=False,
        )
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


class ConsoleWatch:
    """Console errors and uncaught page errors of one page. A test that provokes an
    error on purpose (a refused key, an invalid form) names it with :meth:`allow`."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self._allowed.append(re.compile(pattern))

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append(f"console: {message.text} ({where})")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"page error: {error}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self._allowed)]


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(browser: Browser, console: ConsoleWatch) -> Iterator[Page]:
    """A fresh browser tab (its own session storage) at 1280x800. The test fails if the
    page logged a console error or threw an uncaught error (see :class:`ConsoleWatch`)."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(EXPECT_MS)
    p = context.new_page()
    p.on("console", console.console)
    p.on("pageerror", console.page_error)
    yield p
    context.close()
    unexpected = console.unexpected()
    if unexpected:
        pytest.fail("the page logged errors:\n" + "\n".join(unexpected), pytrace=False)


def login(page: Page, base_url: str, key: str) -> None:
    """Open the dashboard and sign in with ``key``; returns once the jobs list shows."""
    page.goto(f"{base_url}/ui")
    page.get_by_test_id("login-key").fill(key)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("page-jobs").wait_for()


@pytest.fixture(scope="package")
def ui_stack(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The service as processes for the dashboard's tests, on its own database and queue.
    The simulated model server answers after 150 ms, so jobs on ``sim-http`` run long
    enough to be watched (``sim``, in process, is instant)."""
    name = f"ponder_ui_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        with running_stack(
            _pg_url(name),
            f"ponder-ui-{uuid.uuid4().hex[:10]}",
            tmp_path_factory.mktemp("ui-stack"),
            sim_args=("--latency-ms", "150"),
        ) as s:
            engine = make_engine(s.env["PONDER_DATABASE_URL"])
            yield UiStack(s, make_sessionmaker(engine))
            engine.dispose()
    finally:
        _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class UiStack(Stack):
    """A running :class:`Stack` that makes API keys in process (what `ponder keys
    create` does, without starting a Python process per key)."""

    def __init__(self, stack: Stack, sessions: sessionmaker[Session]) -> None:
        super().__init__(stack.env, stack.api_url, stack.sim_url, stack.logdir, stack.procs)
        self.sessions = sessions

    def new_key(self, tenant: str) -> str:
        return create_api_key(self.sessions, tenant)


@pytest.fixture
def tenant_key(ui_stack: UiStack) -> str:
    """An API key of a tenant of its own (so tests sharing a stack see nothing of each
    other's jobs)."""
    return ui_stack.new_key(f"ui-{uuid.uuid4().hex[:10]}")


def client(stack: Stack, key: str) -> httpx.Client:
    """The API over HTTP with ``key``."""
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def submit(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_finished(http: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has a final status (long-polling the API)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
        if job["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
