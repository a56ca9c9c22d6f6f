"""A webhook receiver for tests: answers each request by a plan of status codes and records
every request (headers and raw body). Runs in a thread (``Receiver``) or as its own process:

    python -m tests.webhook_receiver --port P --record FILE --plan 500x2,429:1x1,200

A plan entry is ``STATUS[:RETRY_AFTER][@DELAY_S]xCOUNT`` (the last entry repeats forever);
``301`` answers with a Location header pointing at ``/moved``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Step:
    status: int
    retry_after: str | None = None
    delay: float = 0.0


def parse_plan(plan: str) -> list[Step]:
    steps: list[Step] = []
    for entry in plan.split(","):
        spec, _, count = entry.strip().partition("x")
        delay = 0.0
        if "@" in spec:
            spec, _, d = spec.partition("@")
            delay = float(d)
        status, _, retry_after = spec.partition(":")
        steps.extend([Step(int(status), retry_after or None, delay)] * int(count or 1))
    return steps


@dataclass
class Receiver:
    plan: list[Step]
    record: Path | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    server: ThreadingHTTPServer | None = None
    # set by stop(): a reply still waiting out its delay goes at once
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def next_step(self, path: str, headers: dict[str, str], body: bytes) -> Step:
        with self.lock:
            n = len(self.requests)
            step = self.plan[min(n, len(self.plan) - 1)]
            entry = {
                "path": path,
                "headers": headers,
                "body": body.decode(),
                "status": step.status,
                "at": time.time(),
            }
            self.requests.append(entry)
            if self.record is not None:
                with self.record.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
            self.arrived.notify_all()
            return step

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until ``count`` requests arrived (or fail after ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(
                    f"{len(self.requests)} webhook request(s) arrived, expected {count}"
                )
            return list(self.requests)

    def start(self, port: int = 0) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                step = receiver.next_step(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                if step.delay:
                    receiver.stopped.wait(step.delay)
                payload = b'{"ok": true}' if step.status < 300 else b'{"error": "planned"}'
                try:
                    self.send_response(step.status)
                    if step.retry_after is not None:
                        self.send_header("Retry-After", step.retry_after)
                    if 300 <= step.status < 400:
                        self.send_header("Location", "/moved")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopped.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--plan", default="200")
    args = parser.parse_args()
    receiver = Receiver(parse_plan(args.plan), record=args.record)
    receiver.start(args.port)
    threading.Event().wait()


if __name__ == "__main__":
    main()
