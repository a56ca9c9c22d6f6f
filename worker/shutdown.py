"""Telling the slices running in a worker's pool processes that the worker is stopping.

Celery's prefork pool runs job slices in child processes, but a stop request (SIGTERM
from a deploy, Ctrl-C) reaches only the main worker process, whose *warm shutdown* then
waits for every running task to return. Without help a slice would run to its end
(``slice_seconds``), so a deploy would wait a minute per worker.

:class:`ShutdownFlag` is one byte of shared memory, created in the main process before
the pool forks (so every pool process, including ones forked later, sees the same byte)
and set from Celery's ``worker_shutting_down`` signal, which Celery sends from the main
process's SIGTERM/SIGINT/SIGQUIT handler. A slice reads it like a clock: once set, the
job's Context issues no new call, the calls in flight are drained (journaled) for up to
``drain_seconds``, and the job is handed back — lease released, next slice published —
so another worker resumes it at once (see :func:`worker.runner.run_slice`).

A SIGTERM sent to the pool processes themselves (``kill`` of the whole process group) is
Celery's "terminate this task": the calls in flight are lost (their spend is counted) and
the job resumes on another worker once its lease expires.
"""

from __future__ import annotations

import mmap
from typing import Any

from celery.signals import worker_shutting_down


class ShutdownFlag:
    """A stop flag shared by a process and the children it forks after creating it."""

    def __init__(self) -> None:
        # anonymous mmap: MAP_SHARED, so forked children see the parent's writes
        self._byte = mmap.mmap(-1, 1)

    def set(self) -> None:
        """Safe in a signal handler (one byte written, no lock)."""
        self._byte[0] = 1

    def is_set(self) -> bool:
        return self._byte[0] == 1

    def set_on_worker_shutdown(self) -> ShutdownFlag:
        """Set this flag when a Celery worker in this process starts shutting down."""

        def on_shutting_down(**_: Any) -> None:
            self.set()

        # strong reference: the receiver lives as long as the flag's owner (the app)
        worker_shutting_down.connect(on_shutting_down, weak=False)
        return self
