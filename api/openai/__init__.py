"""The OpenAI-compatible surface, ``/openai/v1``: routes that speak OpenAI's API (Chat
Completions, Responses, Files, Batches, Models) on Ponder's jobs and batches. The
translation is in :mod:`ponder.openai_compat`; these modules parse HTTP, call it and the
service layer, and answer errors in OpenAI's shape (:mod:`api.openai.errors`).
``api.routes.openai`` mounts them; they are not in Ponder's own API document."""
