"""``client.schedules``: cron schedules that create a batch at each fire time, with
triggers, backfills and their runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import httpx

from .._base_client import Call, RequestOptions, model, new_idempotency_key, no_content
from .._pagination import AsyncPage, SyncPage
from .._utils import NOT_GIVEN, NotGiven, body, params, patch_body, segment
from ..types import (
    Backfill,
    BatchTemplate,
    ScheduleDetail,
    ScheduleList,
    ScheduleRun,
    ScheduleRunList,
    ScheduleRunStatus,
)
from ..types import Schedule as ScheduleModel
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncSchedules", "Schedules"]

Timeout: TypeAlias = float | httpx.Timeout | None
TemplateParam: TypeAlias = BatchTemplate | Mapping[str, Any]
Instant: TypeAlias = datetime | str


def _path(schedule_id: str, *rest: str) -> str:
    return "/".join(("/v1/schedules", segment(schedule_id), *rest))


def _create(
    fields: dict[str, Any],
    idempotency_key: str | None,
    extra_body: Mapping[str, Any] | None,
    timeout: Timeout,
) -> Call[ScheduleDetail]:
    options = RequestOptions(
        "POST",
        "/v1/schedules",
        json=body(fields, extra_body),
        timeout=timeout,
        # a name is taken once, so a repeat is refused (409) rather than stored twice;
        # only what cannot have been stored is retried
        idempotent=False,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )
    return Call(options, model(ScheduleDetail))


def _list(
    enabled: bool | None, limit: int | None, cursor: str | None, timeout: Timeout
) -> Call[ScheduleList]:
    query = params(enabled=enabled, limit=limit, cursor=cursor)
    options = RequestOptions("GET", "/v1/schedules", params=query, timeout=timeout)
    return Call(options, model(ScheduleList))


def _get(schedule_id: str, timeout: Timeout) -> Call[ScheduleDetail]:
    options = RequestOptions("GET", _path(schedule_id), timeout=timeout)
    return Call(options, model(ScheduleDetail))


def _update(
    schedule_id: str,
    fields: dict[str, Any],
    extra_body: Mapping[str, Any] | None,
    timeout: Timeout,
) -> Call[ScheduleDetail]:
    options = RequestOptions(
        "PATCH", _path(schedule_id), json=patch_body(fields, extra_body), timeout=timeout
    )
    return Call(options, model(ScheduleDetail))


def _delete(schedule_id: str, timeout: Timeout) -> Call[None]:
    options = RequestOptions(
        "DELETE", _path(schedule_id), timeout=timeout, ok_on_retry=frozenset({404})
    )
    return Call(options, no_content)


def _trigger(schedule_id: str, timeout: Timeout) -> Call[ScheduleRun]:
    # every trigger makes a run: retried only when it cannot have made one
    options = RequestOptions("POST", _path(schedule_id, "trigger"), timeout=timeout)
    return Call(options, model(ScheduleRun))


def _backfill(schedule_id: str, start: Instant, end: Instant, timeout: Timeout) -> Call[Backfill]:
    options = RequestOptions(
        "POST",
        _path(schedule_id, "backfill"),
        json=body({"start": start, "end": end}),
        timeout=timeout,
        # a fire time runs at most once: a repeated backfill makes no new run
        idempotent=True,
    )
    return Call(options, model(Backfill))


def _runs(
    schedule_id: str,
    status: ScheduleRunStatus | None,
    limit: int | None,
    cursor: str | None,
    timeout: Timeout,
) -> Call[ScheduleRunList]:
    query = params(status=status, limit=limit, cursor=cursor)
    options = RequestOptions("GET", _path(schedule_id, "runs"), params=query, timeout=timeout)
    return Call(options, model(ScheduleRunList))


class Schedules(SyncResource):
    """Schedules: a batch from a template at every fire time of a cron expression."""

    def create(
        self,
        *,
        name: str,
        cron: str,
        template: TemplateParam,
        timezone: str | None = None,
        catchup: bool | None = None,
        max_active_runs: int | None = None,
        enabled: bool | None = None,
        start_time: Instant | None = None,
        end_time: Instant | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> ScheduleDetail:
        """Create a schedule. ``template`` is a batch without items (a ``dataset`` or
        ``from_jobs``, with ``defaults``, ``budget``, ``webhook_url``, ``metadata``); the
        cron expression, time zone and template are checked now."""
        fields = {
            "name": name,
            "cron": cron,
            "timezone": timezone,
            "template": template,
            "catchup": catchup,
            "max_active_runs": max_active_runs,
            "enabled": enabled,
            "start_time": start_time,
            "end_time": end_time,
        }
        return self._call(_create(fields, idempotency_key, extra_body, timeout))

    def list(
        self,
        *,
        enabled: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> SyncPage[ScheduleModel]:
        """Your schedules, newest first, a page at a time (iterating goes through all)."""
        page = self._call(_list(enabled, limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[ScheduleModel]:
            return self.list(enabled=enabled, limit=limit, cursor=next_cursor, timeout=timeout)

        return SyncPage(page.data, page.next_cursor, fetch)

    def get(self, schedule_id: str, *, timeout: Timeout = None) -> ScheduleDetail:
        """The schedule, its next fire times and its latest runs."""
        return self._call(_get(schedule_id, timeout))

    def update(
        self,
        schedule_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        cron: str | NotGiven = NOT_GIVEN,
        timezone: str | NotGiven = NOT_GIVEN,
        template: TemplateParam | NotGiven = NOT_GIVEN,
        catchup: bool | NotGiven = NOT_GIVEN,
        max_active_runs: int | NotGiven = NOT_GIVEN,
        enabled: bool | NotGiven = NOT_GIVEN,
        start_time: Instant | NotGiven | None = NOT_GIVEN,
        end_time: Instant | NotGiven | None = NOT_GIVEN,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> ScheduleDetail:
        """Change the fields given; the others keep their value. ``start_time=None`` or
        ``end_time=None`` removes it."""
        fields = {
            "name": name,
            "cron": cron,
            "timezone": timezone,
            "template": template,
            "catchup": catchup,
            "max_active_runs": max_active_runs,
            "enabled": enabled,
            "start_time": start_time,
            "end_time": end_time,
        }
        return self._call(_update(schedule_id, fields, extra_body, timeout))

    def delete(self, schedule_id: str, *, timeout: Timeout = None) -> None:
        """Delete the schedule and its runs (batches already started keep running)."""
        self._call(_delete(schedule_id, timeout))

    def trigger(self, schedule_id: str, *, timeout: Timeout = None) -> ScheduleRun:
        """One ``manual`` run now, outside the cron (also when paused)."""
        return self._call(_trigger(schedule_id, timeout))

    def backfill(
        self, schedule_id: str, *, start: Instant, end: Instant, timeout: Timeout = None
    ) -> Backfill:
        """One ``backfill`` run per fire time in [``start``, ``end``] (instants with a UTC
        offset, not in the future), oldest first. Fire times that already had a run keep
        it (``existing``)."""
        return self._call(_backfill(schedule_id, start, end, timeout))

    def runs(
        self,
        schedule_id: str,
        *,
        status: ScheduleRunStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> SyncPage[ScheduleRun]:
        """The schedule's runs, newest fire time first (iterating goes through all)."""
        page = self._call(_runs(schedule_id, status, limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[ScheduleRun]:
            return self.runs(
                schedule_id, status=status, limit=limit, cursor=next_cursor, timeout=timeout
            )

        return SyncPage(page.data, page.next_cursor, fetch)


class AsyncSchedules(AsyncResource):
    """Schedules: a batch from a template at every fire time of a cron expression."""

    async def create(
        self,
        *,
        name: str,
        cron: str,
        template: TemplateParam,
        timezone: str | None = None,
        catchup: bool | None = None,
        max_active_runs: int | None = None,
        enabled: bool | None = None,
        start_time: Instant | None = None,
        end_time: Instant | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> ScheduleDetail:
        """As :meth:`Schedules.create`."""
        fields = {
            "name": name,
            "cron": cron,
            "timezone": timezone,
            "template": template,
            "catchup": catchup,
            "max_active_runs": max_active_runs,
            "enabled": enabled,
            "start_time": start_time,
            "end_time": end_time,
        }
        return await self._call(_create(fields, idempotency_key, extra_body, timeout))

    async def list(
        self,
        *,
        enabled: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncPage[ScheduleModel]:
        """As :meth:`Schedules.list`."""
        page = await self._call(_list(enabled, limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[ScheduleModel]:
            return await self.list(
                enabled=enabled, limit=limit, cursor=next_cursor, timeout=timeout
            )

        return AsyncPage(page.data, page.next_cursor, fetch)

    async def get(self, schedule_id: str, *, timeout: Timeout = None) -> ScheduleDetail:
        """As :meth:`Schedules.get`."""
        return await self._call(_get(schedule_id, timeout))

    async def update(
        self,
        schedule_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        cron: str | NotGiven = NOT_GIVEN,
        timezone: str | NotGiven = NOT_GIVEN,
        template: TemplateParam | NotGiven = NOT_GIVEN,
        catchup: bool | NotGiven = NOT_GIVEN,
        max_active_runs: int | NotGiven = NOT_GIVEN,
        enabled: bool | NotGiven = NOT_GIVEN,
        start_time: Instant | NotGiven | None = NOT_GIVEN,
        end_time: Instant | NotGiven | None = NOT_GIVEN,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> ScheduleDetail:
        """As :meth:`Schedules.update`."""
        fields = {
            "name": name,
            "cron": cron,
            "timezone": timezone,
            "template": template,
            "catchup": catchup,
            "max_active_runs": max_active_runs,
            "enabled": enabled,
            "start_time": start_time,
            "end_time": end_time,
        }
        return await self._call(_update(schedule_id, fields, extra_body, timeout))

    async def delete(self, schedule_id: str, *, timeout: Timeout = None) -> None:
        """As :meth:`Schedules.delete`."""
        await self._call(_delete(schedule_id, timeout))

    async def trigger(self, schedule_id: str, *, timeout: Timeout = None) -> ScheduleRun:
        """As :meth:`Schedules.trigger`."""
        return await self._call(_trigger(schedule_id, timeout))

    async def backfill(
        self, schedule_id: str, *, start: Instant, end: Instant, timeout: Timeout = None
    ) -> Backfill:
        """As :meth:`Schedules.backfill`."""
        return await self._call(_backfill(schedule_id, start, end, timeout))

    async def runs(
        self,
        schedule_id: str,
        *,
        status: ScheduleRunStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncPage[ScheduleRun]:
        """As :meth:`Schedules.runs`."""
        page = await self._call(_runs(schedule_id, status, limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[ScheduleRun]:
            return await self.runs(
                schedule_id, status=status, limit=limit, cursor=next_cursor, timeout=timeout
            )

        return AsyncPage(page.data, page.next_cursor, fetch)
