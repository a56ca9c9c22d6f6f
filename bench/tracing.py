"""What tracing costs: a span's call site with tracing off and on, and jobs run through the
durable runner (SQLite journal, simulated model, in this process) with tracing off and on.

"On" uses the SDK as `ponder worker` does (a batch span processor) with an exporter that
drops the spans, so the figures are Ponder's and the SDK's share, not a network's. Needs
no services (about 30 s); prints figures, asserts nothing.

    python bench/tracing.py [--jobs 20] [--calls 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from ponder import telemetry
from ponder.config import Settings
from ponder.migrate import upgrade
from tests.jobs_helpers import create_job, run_until_done
from tests.strategy_harness import services

STRATEGY = {
    "name": "best_of_n",
    "params": {"n": 8, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
}


class Dropping(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def per_span_ns(calls: int) -> float:
    attributes = {"ponder.journal.op": "result"}
    started = time.perf_counter_ns()
    for _ in range(calls):
        with telemetry.span("ponder.journal.write", attributes):
            pass
    return (time.perf_counter_ns() - started) / calls


def bare_ns(calls: int) -> float:
    """The same loop around a shared no-op context manager, without the call: the floor."""
    noop = telemetry.NOOP
    started = time.perf_counter_ns()
    for _ in range(calls):
        with noop:
            pass
    return (time.perf_counter_ns() - started) / calls


def jobs_seconds(jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        settings = Settings(database_url=url, broker_url=f"filesystem://{tmp}/broker")
        ids = [create_job(settings, strategy=STRATEGY, seed=i) for i in range(jobs)]
        svc = services(settings, [])
        try:
            started = time.perf_counter()
            for job_id in ids:
                run_until_done(svc, job_id)
            return time.perf_counter() - started
        finally:
            svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds (best is kept)")
    args = parser.parse_args()

    exporter = Dropping()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))

    jobs_seconds(3)  # warm up: imports, registries, the simulator
    floor = bare_ns(args.calls)
    off_ns, on_ns, off_s, on_s = [], [], [], []
    job_spans = 0
    for _ in range(args.rounds):
        off_ns.append(per_span_ns(args.calls))
        off_s.append(jobs_seconds(args.jobs))
        telemetry.install(provider)
        try:
            on_ns.append(per_span_ns(args.calls))
            provider.force_flush()
            exporter.spans = 0
            on_s.append(jobs_seconds(args.jobs))
            provider.force_flush()
            job_spans = exporter.spans
        finally:
            telemetry.uninstall()
    provider.shutdown()

    print(f"a bare `with` of a shared no-op:  {floor:8.0f} ns")
    print(f"span call site, tracing off:      {min(off_ns):8.0f} ns")
    print(f"span call site, tracing on:       {min(on_ns):8.0f} ns (span made, ended, queued)")
    best_off, best_on = min(off_s), min(on_s)
    print(
        f"{args.jobs} jobs of best_of_n n=8 (SQLite, sim), best of {args.rounds}: "
        f"off {best_off:.2f} s, on {best_on:.2f} s ({(best_on / best_off - 1) * 100:+.1f}%), "
        f"{job_spans / args.jobs:.0f} spans per job"
    )


if __name__ == "__main__":
    main()
