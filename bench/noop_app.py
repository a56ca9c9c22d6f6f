"""A bare Celery app with a no-op task: the baseline Ponder's throughput is compared with."""

from __future__ import annotations

import os

from celery import Celery

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/8")
app = Celery("bench-noop", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench-noop"),
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(x: int) -> int:
    return x
