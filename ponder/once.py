"""Run a loader exactly once, safely from many threads (the API serves requests from a
thread pool, so the first requests may all arrive before a lazy registry is filled)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Once:
    """Calls ``fn`` the first time it is called. Other threads calling meanwhile wait until
    ``fn`` has finished, so nobody sees a half-filled registry. A call made from inside
    ``fn`` itself (a module being imported looks something up) returns at once. If ``fn``
    raises, the next call tries again."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._lock = threading.RLock()
        self._done = False
        self._running = False

    def __call__(self) -> None:
        if self._done:
            return
        with self._lock:
            if self._done or self._running:
                return
            self._running = True
            try:
                self._fn()
                self._done = True
            finally:
                self._running = False
