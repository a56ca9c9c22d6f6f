"""The OpenAI-compatible surface's core (``/openai/v1`` in the API): translating OpenAI's
request shapes into Ponder jobs and batches, and Ponder's jobs, batches and files back
into OpenAI's objects, stream events and line formats. No web framework here: the routes
(``api/openai/``) parse HTTP, call these functions and the service layer, and send what
they return."""
