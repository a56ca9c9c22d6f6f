"""Lease renewal from a thread, so a long blocking call cannot let the lease lapse."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds until stopped. ``beat`` returns the
    job's cancel flag, or None when the lease is lost; ``on_result`` receives it."""

    def __init__(
        self,
        interval: float,
        beat: Callable[[], bool | None],
        on_result: Callable[[bool | None], None],
    ) -> None:
        self._interval = interval
        self._beat = beat
        self._on_result = on_result
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ponder-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                result = self._beat()
            except Exception:  # database briefly unreachable: try again next beat
                log.warning("lease heartbeat failed; retrying", exc_info=True)
                continue
            self._on_result(result)
            if result is None:
                return
