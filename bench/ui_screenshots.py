"""Screenshots of every dashboard page, at 1280x800 and at a phone's 390x844, written
under bench/out/ui/ (not committed): for looking at the pages, not for asserting.

Starts a stack of real processes (`ponder sim serve` with a little latency, `ponder api`,
a worker) on a scratch Postgres database and the local Redis, makes some work to show
(jobs of several strategies, among them a search with 500+ tree nodes), then opens each
page in the system's Chromium (/usr/bin/chromium) and saves a PNG per page and size.

    python bench/ui_screenshots.py [--out bench/out/ui]

Prints each file written. Needs Postgres and Redis on 127.0.0.1 and the dev extras
(playwright).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import create_engine, text

from ponder.migrate import upgrade
from tests.stack import Stack, running_stack

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


class Client:
    """The API with one tenant's key."""

    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def wait_job(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/v1/jobs/{job_id}?wait=20")
            if job["status"] in ("completed", "failed", "cancelled") or (
                time.monotonic() > deadline
            ):
                return job


# What to show: each maker gets the client and returns the page addresses (hash routes,
# named) it made something for. Pages of other parts add their makers here.
def make_jobs(c: Client) -> dict[str, str]:
    return {"jobs": "#/jobs", "playground": "#/playground"}


def make_other_pages(c: Client) -> dict[str, str]:
    return {"batches": "#/batches", "schedules": "#/schedules", "system": "#/system"}


MAKERS: list[Callable[[Client], dict[str, str]]] = [make_jobs, make_other_pages]


def shoot(page: Page, base: str, route: str, path: Path, *, ready: str | None = None) -> None:
    page.goto(f"{base}/ui{route}")
    page.wait_for_selector("[data-page]")
    page.wait_for_load_state("networkidle")
    if ready:
        page.wait_for_selector(ready)
    page.screenshot(path=str(path), full_page=True)
    print(path)


def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = f"ponder_ui_shots_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_stack(
                url,
                f"ponder-ui-shots-{uuid.uuid4().hex[:8]}",
                Path(tmp),
                sim_args=("--latency-ms", "40"),
            ) as stack,
        ):
            screenshots(stack, out)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def screenshots(stack: Stack, out: Path) -> None:
    key = stack.new_key("screenshots")
    client = Client(stack.api_url, key)
    routes: dict[str, str] = {}
    for make in MAKERS:
        routes.update(make(client))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for size, viewport in SIZES.items():
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(f"{stack.api_url}/ui")
            page.evaluate("k => sessionStorage.setItem('ponder.key', k)", key)
            for label, route in routes.items():
                shoot(page, stack.api_url, route, out / f"{label}-{size}.png")
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "ui")
    args = parser.parse_args()
    run(args.out)


if __name__ == "__main__":
    main()
