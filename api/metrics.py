"""The API's Prometheus metrics: what ``GET /metrics`` serves (this process's counters
and the state read from the database, see :mod:`ponder.metrics`), and where: at
``/metrics`` on the API's own port (the default, no API key needed), on a port of its
own (``PONDER_API_METRICS_PORT``, e.g. to keep it off a public interface), or nowhere
(``PONDER_METRICS_ENABLED=false``)."""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ponder.config import Settings
from ponder.db import make_engine
from ponder.metrics import DatabaseState, api_registry, serve


class MetricsEndpoint:
    """The API's metrics, built from its settings; ``start`` and ``stop`` run the
    separate listener (when there is one) for the app's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.metrics_enabled
        self.own_port = settings.api_metrics_port
        self._host = settings.api_metrics_host
        self._stop: Callable[[], None] | None = None
        self.engine: Engine | None = None
        self.registry: CollectorRegistry | None = None
        if not self.enabled:
            return
        timeout = settings.metrics_read_timeout_seconds
        options: dict[str, object] = {}
        if not settings.is_sqlite:
            # one connection of its own: a scrape never waits behind API traffic, and
            # gives up on a database that does not answer within the timeout
            options = {
                "pool_size": 1,
                "max_overflow": 0,
                "pool_timeout": timeout,
                "connect_args": {
                    "connect_timeout": max(2, math.ceil(timeout)),
                    "application_name": "ponder-api-metrics",
                },
            }
        self.engine = make_engine(settings.database_url, **options)
        self.registry = api_registry(DatabaseState(self.engine, timeout=timeout))

    @property
    def here(self) -> bool:
        """Whether the API's own port answers ``GET /metrics``."""
        return self.registry is not None and self.own_port is None

    def start(self) -> None:
        """Listen on the metrics port of its own, if there is one. Raises OSError when
        that address cannot be listened on."""
        if self.registry is not None and self.own_port is not None and self._stop is None:
            self._stop = serve(self.registry, self._host, self.own_port)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None
        if self.engine is not None:
            self.engine.dispose()
