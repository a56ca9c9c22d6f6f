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
GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
BUDGET = {"max_tokens": 200000, "max_calls": 2000}


def job(
    c: Client, problem: dict[str, Any], strategy: str, params: dict[str, Any], **more: Any
) -> str:
    body = {
        "problem": problem,
        "strategy": {"name": strategy, "params": params},
        "model": "sim",
        "budget": BUDGET,
        "seed": 1,
        **more,
    }
    return str(c.post("/v1/jobs", body)["id"])


def make_jobs(c: Client) -> dict[str, str]:
    # an MCTS search of 600+ nodes (the tree must read well at that size)
    mcts = job(
        c,
        {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        "mcts",
        {"iterations": 3000, "expand_k": 8, "c": 4.0},
    )
    beam = job(c, GAME24, "beam_search", {})
    votes = job(c, GAME24, "self_consistency", {"n": 24, "stop_when_verified": False})
    best = job(
        c,
        GAME24,
        "best_of_n",
        {"n": 24, "batch_size": 2, "stop_when_verified": False},
        model="sim-http",
        webhook_url="http://127.0.0.1:9/hooks/ponder",
    )
    for found in (mcts, beam, votes, best):
        c.wait_job(found)
    nodes = {
        e["data"]["id"] for e in c.get(f"/v1/jobs/{mcts}/trace")["events"] if e["kind"] == "node"
    }
    print(f"MCTS job: {len(nodes)} tree nodes")
    # one still running while the pages are shot (cancelled at the end by the stack's stop)
    running = job(
        c,
        GAME24,
        "best_of_n",
        {"n": 2000, "batch_size": 1, "stop_when_verified": False},
        model="sim-http",
    )
    return {
        "jobs": "#/jobs",
        "jobs-filtered": "#/jobs?strategy=mcts",
        "playground": "#/playground",
        "job-tree": f"#/jobs/{mcts}",
        "job-calls": f"#/jobs/{mcts}?tab=calls",
        "job-beam": f"#/jobs/{beam}",
        "job-votes": f"#/jobs/{votes}?tab=candidates",
        "job-webhooks": f"#/jobs/{best}?tab=webhooks",
        "job-running": f"#/jobs/{running}",
        "job-missing": "#/jobs/00000000-0000-0000-0000-000000000000",
    }


def wait_batch(c: Client, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = c.get(f"/v1/batches/{batch_id}")
        if batch["status"] in ("completed", "cancelled") or time.monotonic() > deadline:
            return batch
        time.sleep(0.5)


def make_ops_pages(c: Client) -> dict[str, str]:
    """Batches (one run to the end with three strategies, and its re-run with a bigger
    budget), a schedule with a manual run and a backfill, and a batch still running for
    the System page."""
    numbers = [[4, 9, 10, 13], [1, 2, 3, 4], [3, 3, 8, 8], [1, 5, 5, 5], [2, 7, 8, 9], [6, 6, 6, 6]]
    strategies = [
        {"name": "best_of_n", "params": {"n": 2}},
        {"name": "self_consistency", "params": {"n": 4}},
        {"name": "beam_search", "params": {"beam_width": 2}},
    ]
    items = [
        {
            "custom_id": f"q{i}-{s['name']}",
            "problem": {"task": "game24", "input": {"numbers": n}},
            "strategy": s,
        }
        for i, n in enumerate(numbers)
        for s in strategies
    ]
    base = c.post(
        "/v1/batches",
        {"items": items, "defaults": {"model": "sim-http"}, "metadata": {"name": "baseline"}},
    )
    wait_batch(c, base["id"])
    rerun = c.post(
        "/v1/batches",
        {
            "from_jobs": {"batch_id": base["id"]},
            "defaults": {"strategy": {"name": "best_of_n", "params": {"n": 8}}},
            "metadata": {"name": "rerun-n8"},
        },
    )
    wait_batch(c, rerun["id"])
    schedule = c.post(
        "/v1/schedules",
        {
            "name": "nightly-game24",
            "cron": "30 2 * * *",
            "timezone": "UTC",
            "template": {
                "dataset": "game24-easy",
                "defaults": {"model": "sim", "strategy": {"name": "best_of_n", "params": {"n": 2}}},
            },
            "max_active_runs": 2,
        },
    )
    c.post(f"/v1/schedules/{schedule['id']}/trigger", {})
    now = time.time()
    c.post(
        f"/v1/schedules/{schedule['id']}/backfill",
        {
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3 * 86400)),
            "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400)),
        },
    )
    # still running while the System page is shot
    c.post(
        "/v1/batches",
        {
            "items": [
                {"problem": {"task": "game24", "input": {"numbers": n}}} for n in numbers * 40
            ],
            "defaults": {
                "model": "sim-http",
                "priority": 6,
                "strategy": {"name": "best_of_n", "params": {"n": 8}},
            },
            "metadata": {"name": "busy"},
        },
    )
    return {
        "batches": "#/batches",
        "batch": f"#/batches/{base['id']}",
        "batch-rerun": f"#/batches/{rerun['id']}",
        "schedules": "#/schedules",
        "schedule": f"#/schedules/{schedule['id']}",
        "system": "#/system",
    }


MAKERS: list[Callable[[Client], dict[str, str]]] = [make_jobs, make_ops_pages]


def shoot(page: Page, base: str, route: str, path: Path) -> None:
    page.goto(f"{base}/ui{route}")
    page.wait_for_selector("[data-page]")
    # loaded: no "Loading…" note left (a live page keeps its event stream open, so the
    # network never goes idle), then a moment for the page's batched redraws
    page.locator("[data-page] .note-loading").first.wait_for(state="detached")
    page.wait_for_timeout(800)
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
            page.on(
                "console",
                lambda m: m.type == "error" and print(f"console error: {m.text}", file=sys.stderr),
            )
            page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr))
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
