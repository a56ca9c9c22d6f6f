"""Jobs as clients use them: submit (with idempotency), read, list, cancel and trace
(:mod:`ponder.jobs.service`), and what follows when a worker finishes one
(:mod:`ponder.jobs.finished`)."""
