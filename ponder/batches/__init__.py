"""Batches: many jobs submitted at once (inline items, a JSONL upload, a dataset, or a
re-run of past jobs), fed to the queue a few at a time so they never crowd out other
tenants, and reported on as a whole.

- :mod:`ponder.batches.spec`: the request shapes (:class:`BatchSpec`, :class:`BatchTemplate`).
- :mod:`ponder.batches.service`: :func:`create_batch` (validate + insert in one transaction).
- :mod:`ponder.batches.feeder`: keeps at most K items per batch queued or running.
- :mod:`ponder.batches.store`: completion (``batch.completed`` exactly once), cancel, reads.
"""
