"""Schedules: a cron expression in a time zone that creates a batch from a template at
each fire time (``POST /v1/schedules``).

- :mod:`ponder.schedules.cron`: parsing cron expressions and time zones; fire times in
  UTC, with the daylight-saving-time rule.
- :mod:`ponder.schedules.timing`: which fire times are due (catch-up, start/end time).
- :mod:`ponder.schedules.store`: runs in the database: materialising due fire times,
  starting pending runs under ``max_active_runs``, triggers and backfills.
- :mod:`ponder.schedules.launch`: creating a run's batch (:mod:`ponder.batches`).
- :mod:`ponder.schedules.spec`: the requests (create, update, backfill) and their checks.
- :mod:`ponder.schedules.service`: the use cases the API serves (create, list, read,
  change, delete, trigger, backfill, list runs).
"""
