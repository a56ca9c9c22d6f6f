"""Builds the API application from Settings. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from api.deps import AppContext
from api.errors import MAXIMUM_SETTING, PROBLEM_JSON, install_error_handlers, unexpected_error
from api.keyring import AuthCache, Keyring
from api.metrics import MetricsEndpoint
from api.middleware import (
    BodySizeLimitMiddleware,
    JsonDepthLimitMiddleware,
    UnexpectedErrorMiddleware,
)
from api.routes import all_routers
from api.schemas import ProblemDetail
from ponder.batches.service import BatchService
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.fairness import QueueGauge
from ponder.jobs.service import JobService
from ponder.jsonlimits import MAX_DOCUMENT_DEPTH
from ponder.llm.limits import SlotGauge
from ponder.llm.profiles import load_models_file
from ponder.notify import JobNotifier
from ponder.queue import JobQueue
from ponder.quotas import Quotas
from ponder.revocation import RevocationListener, RevocationPublisher
from strategies.registry import CATALOG

DESCRIPTION = """\
Ponder runs hard problems through **test-time-compute strategies** (best-of-N,
self-consistency, refinement, search, ...) against a language model, under a hard
per-job compute budget, and returns the best answer it found.

**Flow.** `POST /v1/jobs` with a problem, a strategy, a model and a budget; you get
`202` and a job id at once. Then either long-poll `GET /v1/jobs/{id}?wait=30` until
the status is `completed`, `failed` or `cancelled`, or give a `webhook_url` and
receive a signed event when the job ends. A job that runs out of budget still
returns its best answer so far.

**Auth.** Every `/v1` endpoint needs `Authorization: Bearer <api key>`. Keys belong
to a tenant (`ponder keys create --tenant NAME`); a tenant sees only its own jobs. A key
holds scopes: `read` for every `GET`, `submit` to create, change or cancel work, `admin`
for API keys (`/v1/keys`) and webhook signing secrets. A key without the scope an
operation needs gets a 403 naming it. A revoked key is refused within a second.

**Errors** are RFC 9457 problem documents (`application/problem+json`) with a
`detail` saying what to fix; invalid fields are listed in `errors`.

**OpenAI-compatible API.** Under `/openai/v1` Ponder also speaks OpenAI's API (chat
completions, responses, files, batches, models) for the official `openai` package; it
follows OpenAI's contract and is not part of this document (see the README's "Use it
from the OpenAI SDK").

**Limits.** Each tenant has limits (jobs per minute, jobs queued or running, batch
items and spend per day). A request over one is a `429` with `Retry-After` and a
`limit` member naming it; a request that could never pass (a priority or budget above
the tenant's maximum) is a `422`.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "jobs", "description": "Submit jobs, follow them, cancel them."},
    {
        "name": "batches",
        "description": "Many jobs at once (inline, JSON Lines, a dataset or a re-run of "
        "past jobs), fed to the workers a few at a time; figures and results.",
    },
    {"name": "datasets", "description": "Lists of problems to run as batches."},
    {
        "name": "schedules",
        "description": "Cron schedules that create a batch at each fire time; triggers, "
        "backfills and the runs they made.",
    },
    {
        "name": "webhooks",
        "description": "Signing secrets, and every delivery of a job's events with its attempts.",
    },
    {"name": "catalog", "description": "The strategies and models a job may name."},
    {
        "name": "admin",
        "description": "For the service's operators (admin API keys): tenants' limits.",
    },
    {
        "name": "keys",
        "description": "API keys of your tenant: create them with scopes, list them (with "
        "their last use), revoke them. Needs the `admin` scope.",
    },
    {
        "name": "system",
        "description": "What the deployment is doing now: workers, the queue, models' "
        "concurrency in use, your webhook deliveries.",
    },
    {"name": "health", "description": "Liveness and readiness probes (no auth)."},
]


# Threads for the hot paths' database work (submitting and reading jobs). Few: they
# spend most of their time waiting on Postgres, and every extra thread contending for
# the GIL costs CPU (measured: 40 threads cost 30% more CPU per submission than 4-8).
HOT_PATH_THREADS = 8


def create_app(settings: Settings, *, dispatcher: JobQueue) -> FastAPI:
    """The API for ``settings``: its own engine, sessions and model profiles, publishing
    to the job queue ``dispatcher`` (owned by the caller: ``ponder api`` builds the
    Celery one from ``settings.broker_url``)."""
    models = load_models_file(settings.models_file)  # a bad models file fails here, early
    engine = make_engine(settings.database_url)
    queues = QueueGauge()
    quotas = Quotas()
    context = AppContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        dispatcher=dispatcher,
        strategies=CATALOG,
        models=models,
        reads=make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT")),
        db_threads=anyio.CapacityLimiter(HOT_PATH_THREADS),
        queues=queues,
        jobs=JobService(settings, models, CATALOG, dispatcher, queues, quotas),
        batches=BatchService(settings, models, CATALOG, dispatcher, quotas),
        quotas=quotas,
        slots=SlotGauge(settings.broker_url),
    )

    notifier = JobNotifier(settings.database_url)
    keyring = Keyring(AuthCache(ttl=settings.auth_cache_seconds))
    revocations = RevocationListener(
        settings.broker_url,
        settings.queue,
        on_revoked=keyring.revoked,
        on_resync=keyring.resync,
    )
    publisher = RevocationPublisher(settings.broker_url, settings.queue)
    metrics = MetricsEndpoint(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics.start()  # first: a metrics port that cannot be listened on stops here
        notifier.start()
        revocations.start()
        try:
            yield
        finally:
            await revocations.stop()
            publisher.close()
            await notifier.stop()
            metrics.stop()
            context.slots.close()
            engine.dispose()

    app = FastAPI(
        title="Ponder",
        summary="Spend more inference compute, get better answers.",
        description=DESCRIPTION,
        version="0.1.0",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.ponder = context
    # the parts, for code that wants one of them directly
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = context.sessions
    app.state.dispatcher = dispatcher
    app.state.models = models
    app.state.job_notifier = notifier
    app.state.keyring = keyring
    app.state.auth_cache = keyring.cache
    app.state.revocations = revocations
    app.state.revocation_publisher = publisher
    app.state.metrics = metrics

    install_error_handlers(app)
    # the last added runs first: errors answered without closing the connection, then
    # the body's size, then its JSON nesting
    app.add_middleware(JsonDepthLimitMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=("/v1/batches", "/v1/datasets", "/openai/v1/files"),
    )
    app.add_middleware(UnexpectedErrorMiddleware, handler=unexpected_error)
    for router in all_routers([tag["name"] for tag in TAGS]):
        app.include_router(router)
    _document_problem_responses(app, settings)
    return app


# Error statuses any operation of a kind may answer, declared on each such operation
# (a route's own description of one wins). Routes declare the others (403, 409).
_PARAMETER_ERRORS = {"422": "A parameter is invalid (`detail` and `errors` say which)."}
_PATH_ERRORS = {"404": "No such resource for this API key's tenant."}
_BODY_ERRORS = {
    "400": "The request could not be read (a malformed `Content-Length`).",
    "413": "The body is larger than the server accepts.",
    "415": "The body's `Content-Type` is not one this operation takes.",
    "422": (
        "The body is invalid: a field (`detail` and `errors` say which), JSON that does "
        f"not parse or nests deeper than {MAX_DOCUMENT_DEPTH} levels, a string holding "
        "a NUL character."
    ),
}


def _document_problem_responses(app: FastAPI, settings: Settings) -> None:
    """Error responses are ``application/problem+json`` documents; say so in the schema,
    replacing FastAPI's default 422 body. Every operation declares every error status it
    can answer, and parameters bounded by a setting show its value as their maximum."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ProblemDetail" not in components:
            components.update(_problem_schemas())
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                parameters = operation.get("parameters", [])
                errors: dict[str, str] = {}
                if parameters:
                    errors.update(_PARAMETER_ERRORS)
                if any(p.get("in") == "path" for p in parameters):
                    errors.update(_PATH_ERRORS)
                if "requestBody" in operation:
                    errors.update(_BODY_ERRORS)
                if "security" in operation or any(p.get("in") == "header" for p in parameters):
                    errors["401"] = "Missing or invalid API key."
                for code, description in errors.items():
                    responses.setdefault(code, {"description": description})
                for code, response in responses.items():
                    if code.startswith(("4", "5")):
                        response["content"] = problem
                if "security" in operation or any(
                    p.get("in") == "header" for p in operation.get("parameters", [])
                ):
                    responses.setdefault(
                        "401",
                        {"description": "Missing or invalid API key.", "content": problem},
                    )
                scopes = [
                    s for need in operation.get("security", []) for v in need.values() for s in v
                ]
                if scopes:
                    lacking = (
                        f"The API key lacks the `{'`, `'.join(scopes)}` scope "
                        "(`missing_scope` names it)."
                    )
                    documented = responses.get("403")
                    if documented is None:
                        responses["403"] = {"description": lacking, "content": problem}
                    else:
                        documented["description"] = f"{documented['description']} Or: {lacking}"
                for parameter in parameters:
                    _parameter_schema(parameter, settings)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _parameter_schema(parameter: dict[str, Any], settings: Settings) -> None:
    """A parameter's schema as clients send it: an optional parameter is left out, never
    ``null`` (FastAPI writes ``anyOf: [X, {"type": "null"}]`` for ``X | None``; a header
    or query value cannot be JSON null), and a :data:`api.errors.MAXIMUM_SETTING` marker
    becomes the setting's value, as ``maximum``."""
    schema: dict[str, Any] = parameter.get("schema", {})
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        if len(rest) == 1:
            del schema["anyOf"]
            schema.update(rest[0])
    setting = schema.pop(MAXIMUM_SETTING, None)
    if setting is not None:
        schema["maximum"] = getattr(settings, setting)


def _problem_schemas() -> dict[str, Any]:
    schema = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    return {**defs, "ProblemDetail": schema}
