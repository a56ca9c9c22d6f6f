"""``ponder worker --processes N``: N worker processes, kept running.

Each child is a whole worker (``ponder worker --processes 1``): its own Celery consumer,
its own event loop running up to ``--max-jobs`` slices, its own connections. The
supervisor forwards SIGTERM/SIGINT/SIGQUIT to every child (each then hands its jobs back
after draining the calls in flight), and starts a child again when one dies without
being asked to (as ``kill -9`` would), so a crash costs one process's jobs their lease
time, not the whole worker.

With a metrics port (``--metrics-port``) the children run in prometheus_client's
multiprocess mode: the supervisor makes a directory for this run, each child writes its
counters there (``PROMETHEUS_MULTIPROC_DIR``), and the supervisor serves their sum on
the one port, so Prometheus scrapes one target per worker however many processes it has.
A child that dies and is started again keeps what it counted; the directory is removed
when the supervisor stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import FrameType

from ponder.metrics import mark_process_dead, multiprocess_registry, serve

log = logging.getLogger(__name__)

# a child that keeps dying is restarted at most this often
RESTART_BACKOFF_SECONDS = 1.0
POLL_SECONDS = 0.2


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the supervisor dies (even by SIGKILL),
    as a prefork pool's processes are, rather than run on unsupervised."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class SharedMetrics:
    """The metrics of every child process, summed and served on one address."""

    def __init__(self, host: str, port: int) -> None:
        self.directory = tempfile.mkdtemp(prefix="ponder-worker-metrics-")
        try:
            self._stop: Callable[[], None] | None = serve(
                multiprocess_registry(self.directory), host, port
            )
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        log.info("worker metrics at http://%s:%d/metrics", host, port)

    def child_env(self) -> dict[str, str]:
        """A child's environment: it writes its metrics to the shared directory, and
        serves none of its own."""
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=self.directory)
        env.pop("PONDER_WORKER_METRICS_PORT", None)
        return env

    def process_died(self, pid: int) -> None:
        mark_process_dead(pid, self.directory)

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None
        shutil.rmtree(self.directory, ignore_errors=True)


def supervise(
    child_args: Sequence[str], processes: int, *, metrics: SharedMetrics | None = None
) -> int:
    """Run ``processes`` copies of ``python -m ponder.cli <child_args>`` until a stop
    signal; returns the exit status to exit with. ``metrics`` (closed on return) serves
    the children's metrics."""
    try:
        return _supervise(child_args, processes, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _supervise(child_args: Sequence[str], processes: int, metrics: SharedMetrics | None) -> int:
    command = [sys.executable, "-m", "ponder.cli", *child_args]
    children: list[subprocess.Popen[bytes] | None] = [None] * processes
    last_start = [0.0] * processes
    stopping = False
    env = None if metrics is None else metrics.child_env()

    def start(i: int) -> None:
        last_start[i] = time.monotonic()
        children[i] = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
        log.info("worker process %d started (pid %d)", i, children[i].pid)  # type: ignore[union-attr]

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, forward)
    for i in range(processes):
        start(i)
    while True:
        alive = 0
        for i, child in enumerate(children):
            if child is None:
                continue
            code = child.poll()
            if code is None:
                alive += 1
                continue
            if metrics is not None:
                metrics.process_died(child.pid)
            if stopping:
                children[i] = None
                continue
            log.warning(
                "worker process %d (pid %d) exited with status %d; starting it again",
                i,
                child.pid,
                code,
            )
            wait = last_start[i] + RESTART_BACKOFF_SECONDS - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            start(i)
            alive += 1
        if stopping and alive == 0:
            return 0
        time.sleep(POLL_SECONDS)
