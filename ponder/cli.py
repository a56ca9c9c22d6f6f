"""The ``ponder`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ponder.config import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ponder_client import Ponder
    from ponder_client.types import Job

app = typer.Typer(
    help=(
        "Ponder: spend more inference compute to get better answers. Submit hard problems, "
        "let workers run test-time-compute strategies under a budget, collect the results."
    ),
    no_args_is_help=True,
    add_completion=False,
)
sim_app = typer.Typer(help="The simulated model (runs offline; for tests, demos, benchmarks).")
keys_app = typer.Typer(help="API keys.")
app.add_typer(sim_app, name="sim")
app.add_typer(keys_app, name="keys")
datasets_app = typer.Typer(
    help=(
        "Ready-made problem sets shipped with Ponder (Game of 24 puzzles ranked by "
        "difficulty, arithmetic word problems by depth), e.g. to run as a batch."
    ),
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")
batches_app = typer.Typer(
    help="Batches: many jobs at once (see also `ponder report`).", no_args_is_help=True
)
app.add_typer(batches_app, name="batches")

tenants_app = typer.Typer(help="Tenants and their limits.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
limits_app = typer.Typer(
    help="A tenant's limits (rate, jobs queued or running, batch items and spend per day, "
    "priority, per-job budget ceilings). Unset limits are the server's PONDER_TENANT_* "
    "and PONDER_LIMIT_MAX_* defaults.",
    no_args_is_help=True,
)
tenants_app.add_typer(limits_app, name="limits")

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="PONDER_API_URL", help="Base URL of the Ponder API.")
]
ApiKey = Annotated[
    str,
    typer.Option("--api-key", envvar="PONDER_API_KEY", help="API key (see `ponder keys create`)."),
]


def _settings() -> Settings:
    return Settings()


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (PONDER_DATABASE_URL) to the latest version."""
    from ponder.migrate import describe_upgrade, upgrade

    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    typer.echo(describe_upgrade(*upgrade(settings.database_url)))


def _metrics_port(help_text: str) -> Any:
    return typer.Option("--metrics-port", min=1, max=65_535, help=help_text, show_default=False)


def _metrics_host(setting: str) -> Any:
    return typer.Option(
        "--metrics-host",
        help=f"Interface the metrics port listens on. Default: {setting}, else 127.0.0.1.",
        show_default=False,
    )


ApiMetricsPort = Annotated[
    int | None,
    _metrics_port(
        "Serve Prometheus metrics at http://METRICS_HOST:PORT/metrics instead of at /metrics "
        "on the API's port. Default: PONDER_API_METRICS_PORT, else on the API's port."
    ),
]
ApiMetricsHost = Annotated[str | None, _metrics_host("PONDER_API_METRICS_HOST")]
WorkerMetricsPort = Annotated[
    int | None,
    _metrics_port(
        "Serve Prometheus metrics (summed over the processes) at "
        "http://METRICS_HOST:PORT/metrics. Default: PONDER_WORKER_METRICS_PORT, else none."
    ),
]
WorkerMetricsHost = Annotated[str | None, _metrics_host("PONDER_WORKER_METRICS_HOST")]


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    metrics_port: ApiMetricsPort = None,
    metrics_host: ApiMetricsHost = None,
) -> None:
    """Run the REST API server. It serves Prometheus metrics at /metrics on its port
    (no API key needed), or with --metrics-port on a port (and --metrics-host an
    interface) of their own; PONDER_METRICS_ENABLED=false turns them off."""
    import uvicorn

    from api.main import create_app
    from ponder import logs, telemetry
    from worker.celery_app import dispatcher_for

    settings = _settings()
    updates: dict[str, Any] = {}
    if metrics_port is not None:
        updates["api_metrics_port"] = metrics_port
    if metrics_host is not None:
        updates["api_metrics_host"] = metrics_host
    settings = settings.model_copy(update=updates)
    if not settings.metrics_enabled and settings.api_metrics_port is not None:
        raise typer.BadParameter(
            "a metrics port was given (--metrics-port or PONDER_API_METRICS_PORT) but "
            "metrics are turned off (PONDER_METRICS_ENABLED=false); give one or the other",
            param_hint="--metrics-port",
        )
    options: dict[str, Any] = {}
    if settings.log_format == "json":
        # uvicorn's own loggers then go through the root logger's JSON lines
        logs.configure("json", "INFO")
        options["log_config"] = None
    telemetry.setup("ponder-api")
    dispatcher = dispatcher_for(settings)
    try:
        uvicorn.run(
            create_app(settings, dispatcher=dispatcher),
            host=host,
            port=port,
            log_level="info",
            **options,
        )
    finally:
        dispatcher.close()


@app.command()
def worker(
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            help="Worker processes (CPU parallelism). Default: PONDER_WORKER_PROCESSES, "
            "else one per CPU core.",
            min=1,
        ),
    ] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(
            "--max-jobs",
            help="Job slices each process runs at once on its event loop (jobs mostly wait "
            "on model servers, so hundreds fit). Default: PONDER_WORKER_MAX_JOBS (512).",
            min=1,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            help="Old name of --processes (the number of worker processes).",
            min=1,
            hidden=False,
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    metrics_port: WorkerMetricsPort = None,
    metrics_host: WorkerMetricsHost = None,
) -> None:
    """Run workers that execute job slices: --processes processes, each running up to
    --max-jobs slices at once. Stop with SIGTERM or Ctrl-C: each process hands its jobs
    back to the queue after journaling the calls in flight. With --metrics-port (default
    PONDER_WORKER_METRICS_PORT; off when unset) the worker serves Prometheus metrics,
    summed over its processes, at http://METRICS_HOST:PORT/metrics."""
    settings = _settings()
    if concurrency is not None and processes is not None and concurrency != processes:
        raise typer.BadParameter(
            "--concurrency is the old name of --processes; give one of them, not both"
        )
    n = processes or concurrency or settings.worker_processes or os.cpu_count() or 1
    slots = max_jobs or settings.worker_max_jobs
    listen = _worker_metrics_address(settings, metrics_host, metrics_port)
    from ponder import logs

    if n > 1:
        from worker.supervisor import SharedMetrics, supervise

        logs.configure(settings.log_format, loglevel, text_format="%(asctime)s %(message)s")
        child = ["worker", "--processes", "1", "--max-jobs", str(slots), "--loglevel", loglevel]
        shared = None if listen is None else _serve_or_exit(lambda: SharedMetrics(*listen), listen)
        raise typer.Exit(supervise(child, n, metrics=shared))
    if listen is not None:
        from prometheus_client import REGISTRY

        from ponder.metrics import serve

        _serve_or_exit(lambda: serve(REGISTRY, *listen), listen)
    from ponder import telemetry
    from worker.celery_app import celery_logging
    from worker.celery_tasks import create_worker_app

    quiet = celery_logging(settings.log_format, loglevel)
    telemetry.setup("ponder-worker")
    # the process's share per tenant follows its real number of slots
    celery = create_worker_app(settings.model_copy(update={"worker_max_jobs": slots}))
    celery.worker_main(
        [
            *quiet,
            "worker",
            # one thread per slice in flight: each hands its slice to the process's event
            # loop and waits for it, so Celery acknowledges a message when its slice ends
            "--pool=threads",
            f"--concurrency={slots}",
            f"--queues={settings.queue}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=ponder-{os.getpid()}@%h",
        ]
    )


def _worker_metrics_address(
    settings: Settings, host: str | None, port: int | None
) -> tuple[str, int] | None:
    """Where the worker serves its metrics (the options, else the settings), or None."""
    port = port if port is not None else settings.worker_metrics_port
    if port is None:
        return None
    if not settings.metrics_enabled:
        raise typer.BadParameter(
            "a metrics port was given (--metrics-port or PONDER_WORKER_METRICS_PORT) but "
            "metrics are turned off (PONDER_METRICS_ENABLED=false); give one or the other",
            param_hint="--metrics-port",
        )
    return (host if host is not None else settings.worker_metrics_host, port)


def _serve_or_exit(start: Any, listen: tuple[str, int]) -> Any:
    """``start()``, or exit with a message saying why the metrics port failed."""
    try:
        return start()
    except OSError as exc:
        typer.echo(
            f"error: cannot serve metrics on {listen[0]} port {listen[1]}: {exc.strerror or exc}"
            " (is another process using that port, or is the host not an address of this "
            "machine?); choose another with --metrics-port / --metrics-host",
            err=True,
        )
        raise typer.Exit(2) from None


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run the scheduler. Every few seconds it triggers the reaper (re-enqueues lost work,
    sends due webhook retries, feeds batches) and the schedule tick (starts the batches of
    schedules whose time has come). Running two is safe: a fire time runs at most once."""
    from worker.celery_app import celery_logging
    from worker.celery_tasks import create_worker_app

    settings = _settings()
    quiet = celery_logging(settings.log_format, loglevel)
    celery = create_worker_app(settings)
    # beat's own bookkeeping (last run times) is throwaway: everything it decides is in
    # Postgres; the directory goes when beat stops (SIGTERM or Ctrl-C included)
    with tempfile.TemporaryDirectory(prefix="ponder-beat-") as state:
        schedule = Path(state) / "schedule"
        celery.start([*quiet, "beat", f"--schedule={schedule}", f"--loglevel={loglevel}"])


@sim_app.command("serve")
def sim_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9100,
    latency_ms: Annotated[
        float, typer.Option(help="Time to first token, in milliseconds.", min=0)
    ] = 0.0,
    tokens_per_s: Annotated[
        float, typer.Option(help="Generation speed; 0 means instant.", min=0)
    ] = 0.0,
    no_n: Annotated[
        bool, typer.Option("--no-n", help="Reject n > 1, like servers that lack it.")
    ] = False,
) -> None:
    """Serve the simulated model as an OpenAI-compatible HTTP API (/v1/chat/completions,
    /v1/models), plus a simulated process reward model (/score, /score_steps)."""
    from api.simulator import serve

    serve(host, port, ttft_ms=latency_ms, tokens_per_s=tokens_per_s, supports_n=not no_n)


ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="A scope the key holds: admin (API keys, webhook secrets), submit (create, "
        "change and cancel work) or read (every GET). Repeat for several; default: all three.",
    ),
]


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name; created if it does not exist.")],
    scope: ScopeOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A label to tell keys apart, e.g. ci.")
    ] = None,
) -> None:
    """Create an API key for a tenant. The key is printed once, alone on the last line."""
    from ponder.auth import ALL_SCOPES, create_api_key, normalize_scopes
    from ponder.db import make_engine, make_sessionmaker

    try:
        scopes = normalize_scopes(scope) if scope else ALL_SCOPES
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        key = create_api_key(make_sessionmaker(engine), tenant, scopes=scopes, name=name)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(
        f"created an API key for tenant {tenant!r} with scopes {', '.join(scopes)}; "
        "it is shown only once:",
        err=True,
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's keys (default: every tenant's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines, one key a line.")] = False,
) -> None:
    """Show the API keys (never the keys themselves, which are not stored): id, tenant,
    name, prefix, scopes, when created, last used and revoked."""
    from ponder.auth import all_keys, scopes_of
    from ponder.db import make_engine, make_sessionmaker

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = all_keys(session, tenant)
    finally:
        engine.dispose()

    def when(value: Any) -> str:
        return "" if value is None else value.isoformat(timespec="seconds")

    if as_json:
        for row, tenant_name in rows:
            shown = {
                "id": row.id,
                "tenant": tenant_name,
                "name": row.name,
                "prefix": row.prefix,
                "scopes": list(scopes_of(row)),
                "created_at": when(row.created_at),
                "last_used_at": when(row.last_used_at) or None,
                "revoked_at": when(row.revoked_at) or None,
            }
            typer.echo(json.dumps(shown))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "tenant", "name", "prefix", "scopes", "created", "last used", "revoked")
    for row, tenant_name in rows:
        table.add_row(
            row.id,
            tenant_name,
            row.name or "",
            row.prefix,
            " ".join(scopes_of(row)),
            when(row.created_at),
            when(row.last_used_at) or "never",
            when(row.revoked_at),
        )
    Console(width=max(Console().width, 160)).print(table)
    if not rows:
        typer.echo("no API keys" + (f" for tenant {tenant!r}" if tenant else ""), err=True)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            help="The key's id, its prefix as `ponder keys list` shows it (pk_ and 8 "
            "characters) or the whole key."
        ),
    ],
) -> None:
    """Revoke an API key. Every API process refuses it within a second and closes its
    event streams (through the broker's Redis; without Redis, once their auth cache
    expires)."""
    from ponder.auth import revoke_key_by_reference
    from ponder.db import make_engine, make_sessionmaker
    from ponder.errors import Conflict, NotFound
    from ponder.revocation import publish_revoked

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            row = revoke_key_by_reference(session, key)
            key_id, prefix, key_hash = row.id, row.prefix, row.key_hash
    except (NotFound, Conflict) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    try:
        heard = publish_revoked(settings.broker_url, settings.queue, key_hash)
    except Exception as exc:
        typer.echo(
            f"revoked API key {key_id} ({prefix}...), but could not tell the API processes "
            f"({type(exc).__name__}: {exc}); they refuse it once their auth cache expires "
            f"({settings.auth_cache_seconds:g} s)",
            err=True,
        )
        return
    if heard is None:
        told = (
            f"without Redis, running API processes refuse it once their auth cache "
            f"expires ({settings.auth_cache_seconds:g} s)"
        )
    else:
        told = f"{heard} API {'process' if heard == 1 else 'processes'} told"
    typer.echo(f"revoked API key {key_id} ({prefix}...); {told}", err=True)


def _limit_option(help_text: str) -> Any:
    return typer.Option(help=help_text + " A number, or `default` for the server's.")


@limits_app.command("show")
def tenants_limits_show(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
) -> None:
    """Print the tenant's limits as JSON, each with where it comes from (`tenant`: its
    own, `server`: the default), and what it uses of them now."""
    from ponder.db import make_engine, make_sessionmaker
    from ponder.errors import NotFound
    from ponder.quotas import describe, get_tenant

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            try:
                shown = describe(session, get_tenant(session, name), settings)
            except NotFound as exc:
                typer.echo(f"error: {exc.detail}", err=True)
                raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(json.dumps(shown, indent=2))


@limits_app.command("set")
def tenants_limits_set(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    max_priority: Annotated[
        str | None, _limit_option("Highest job priority it may ask for (0 to 9).")
    ] = None,
    jobs_per_minute: Annotated[
        str | None, _limit_option("Jobs it may submit per minute, sustained.")
    ] = None,
    jobs_burst: Annotated[
        str | None, _limit_option("Jobs it may submit at once before the rate applies.")
    ] = None,
    max_active_jobs: Annotated[
        str | None, _limit_option("Its jobs queued or running at once, batch items included.")
    ] = None,
    batch_items_per_day: Annotated[
        str | None, _limit_option("Batch items it may submit per UTC day.")
    ] = None,
    max_job_tokens: Annotated[
        str | None, _limit_option("Most budget.max_tokens of one job (at most the server's).")
    ] = None,
    max_job_calls: Annotated[
        str | None, _limit_option("Most budget.max_calls of one job (at most the server's).")
    ] = None,
    max_job_cost_usd: Annotated[
        str | None, _limit_option("Most budget.max_cost_usd of one job (at most the server's).")
    ] = None,
    max_job_seconds: Annotated[
        str | None, _limit_option("Most budget.max_seconds of one job (at most the server's).")
    ] = None,
    spend_per_day_usd: Annotated[
        str | None, _limit_option("US dollars its model calls may cost per UTC day.")
    ] = None,
    max_schedules: Annotated[str | None, _limit_option("Schedules it may have.")] = None,
    max_datasets: Annotated[str | None, _limit_option("Uploaded datasets it may have.")] = None,
) -> None:
    """Set some of the tenant's limits (the others keep their value) and print them all
    as `show` does. Running API and worker processes apply the change within
    PONDER_TENANT_LIMITS_CACHE_SECONDS."""
    from ponder.db import make_engine, make_sessionmaker
    from ponder.errors import NotFound
    from ponder.quotas import describe, get_tenant, is_integer_limit, set_limits

    given = {
        "max_priority": max_priority,
        "jobs_per_minute": jobs_per_minute,
        "jobs_burst": jobs_burst,
        "max_active_jobs": max_active_jobs,
        "batch_items_per_day": batch_items_per_day,
        "max_job_tokens": max_job_tokens,
        "max_job_calls": max_job_calls,
        "max_job_cost_usd": max_job_cost_usd,
        "max_job_seconds": max_job_seconds,
        "spend_per_day_usd": spend_per_day_usd,
        "max_schedules": max_schedules,
        "max_datasets": max_datasets,
    }
    changes: dict[str, float | int | None] = {}
    for field, raw in given.items():
        if raw is None:
            continue
        flag = "--" + field.replace("_", "-")
        if raw.strip().lower() == "default":
            changes[field] = None
            continue
        try:
            number = float(raw)
        except ValueError:
            typer.echo(f"error: {flag} takes a number or `default`, not {raw!r}", err=True)
            raise typer.Exit(2) from None
        if is_integer_limit(field):
            if not number.is_integer():
                typer.echo(f"error: {flag} takes a whole number, not {raw!r}", err=True)
                raise typer.Exit(2)
            changes[field] = int(number)
        else:
            changes[field] = number
    if not changes:
        typer.echo("error: give at least one limit to set (see --help)", err=True)
        raise typer.Exit(2)
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            try:
                tenant = get_tenant(session, name)
                set_limits(session, tenant.id, changes, settings)
            except NotFound as exc:
                typer.echo(f"error: {exc.detail}", err=True)
                raise typer.Exit(2) from None
            except ValueError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            session.commit()
            shown = describe(session, tenant, settings)
    finally:
        engine.dispose()
    typer.echo(json.dumps(shown, indent=2))


@datasets_app.command("list")
def datasets_list() -> None:
    """Show every built-in dataset a batch may name: its name, task family, number of
    items and what it is (the aliases `game24` and `arithmetic` first)."""
    from rich.console import Console
    from rich.table import Table

    from ponder.datasets.catalog import builtin_datasets

    table = Table("name", "task", "size", "description")
    for d in builtin_datasets():
        table.add_row(d.name, d.task, str(d.size), d.description)
    Console(width=max(Console().width, 120)).print(table)


@datasets_app.command("show")
def datasets_show(
    name: Annotated[str, typer.Argument(help="Dataset name, as shown by `ponder datasets list`.")],
    limit: Annotated[
        int | None, typer.Option(help="Print at most this many items (default: all).", min=0)
    ] = None,
) -> None:
    """Print a dataset's items as JSON Lines, one problem per line.

    Each line is a job `problem` ({"task", "input", "expected"?}) plus "id" and
    "difficulty"; drop those two to submit it (or use it as a batch item)."""
    from ponder.datasets import load_dataset
    from ponder.datasets.catalog import ALIASES

    try:
        parts = ALIASES[name][2] if name in ALIASES else (name,)
        items = [item for part in parts for item in load_dataset(part)]
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None
    for item in items if limit is None else items[:limit]:
        typer.echo(json.dumps(item, ensure_ascii=False))


# ---- client commands (through the Python client library, ponder_client) ------------------


@contextmanager
def _client(api_url: str, api_key: str) -> Iterator[Ponder]:
    """A client of the API. An error answer prints ``error: HTTP <status>: <detail>`` and
    exits 1; a missing key exits 2."""
    from ponder_client import APIConnectionError, APIStatusError, Ponder

    if not api_key:
        typer.echo("error: no API key: pass --api-key or set PONDER_API_KEY", err=True)
        raise typer.Exit(2)
    try:
        with Ponder(api_url, api_key) as client:
            yield client
    except APIStatusError as exc:
        typer.echo(f"error: HTTP {exc.status_code}: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    except APIConnectionError as exc:
        typer.echo(f"error: cannot reach the API at {api_url}: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _json(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"), indent=2)


def _read_object(file: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``file``; exits 2 (saying why) if there is none."""
    try:
        body = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot read a JSON {what} from {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(body, dict):
        typer.echo(f"error: {file} must hold a JSON object ({{...}}), the {what}", err=True)
        raise typer.Exit(2)
    return body


def _as_arguments(method: Any, body: dict[str, Any]) -> dict[str, Any]:
    """A request body as keyword arguments of a client method: its fields by name, and
    what the method does not name in ``extra_body`` (so the server says what is wrong
    with it, as it does for any request)."""
    import inspect

    client_only = {"extra_body", "idempotency_key", "timeout", "file"}
    names = [
        name
        for name, parameter in inspect.signature(method).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in client_only
    ]
    arguments: dict[str, Any] = {name: body.get(name) for name in names}
    arguments["extra_body"] = {k: v for k, v in body.items() if k not in names} or None
    return arguments


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSON file with the job body (see README).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Submit a job; with --wait, follow its live events with a progress bar of spend and
    best score (on stderr), then print the finished job as JSON (on stdout)."""
    body = _read_object(file, "job body")
    with _client(api_url, api_key) as client:
        job = client.jobs.create(**_as_arguments(client.jobs.create, body))
        typer.echo(f"submitted job {job.id} ({job.status})", err=True)
        if wait:
            job = _follow(client, job)
        typer.echo(_json(job))
        if wait and job.status != "completed":
            raise typer.Exit(1)


# Following a job: give up after the API has been unreachable this long; read the job's
# spend at most this often.
RECONNECT_GIVE_UP_SECONDS = 300.0
REFRESH_SECONDS = 0.5


def _follow(client: Ponder, job: Job) -> Job:
    """Follow the job's event stream until the job ends, redrawing the bar when events
    arrive; the stream reconnects after a dropped connection (with Last-Event-ID, so no
    event is missed or repeated). Returns the finished job."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from ponder_client import APIConnectionError, InternalServerError, PonderError

    budget = job.budget
    total = budget.max_tokens or budget.max_calls or 1
    unit = "tokens" if budget.max_tokens else "calls"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} " + unit),
        console=Console(stderr=True),  # stdout carries only the final job JSON
        transient=False,
    ) as bar:
        task = bar.add_task("queued", total=total)

        def show(job: Job) -> Job:
            best = job.progress.get("best_score")
            best_text = "-" if not isinstance(best, int | float) else f"{best:.2f}"
            verified = " verified" if job.progress.get("verified") else ""
            spent = job.usage.tokens if unit == "tokens" else job.usage.calls
            bar.update(
                task,
                completed=min(total, spent),
                description=(
                    f"{job.status:<9} best score {best_text}{verified}  ${job.usage.cost_usd:.4f}"
                ),
            )
            return job

        def lost(error: PonderError, last_event_id: int | None) -> None:
            where = "" if last_event_id is None else f" after event {last_event_id}"
            bar.console.print(
                f"lost the connection to the API ({error}); reconnecting to follow the job{where}"
            )

        def back() -> None:
            bar.console.print("reconnected to the API; following the job again")

        refreshed = 0.0
        try:
            for _ in client.jobs.stream(
                job.id,
                max_outage=RECONNECT_GIVE_UP_SECONDS,
                on_disconnect=lost,
                on_reconnect=back,
            ):
                # events say the job moved on: redraw from its spend, not too often
                if time.monotonic() - refreshed >= REFRESH_SECONDS:
                    refreshed = time.monotonic()
                    # if the API is away the stream notices too, and reconnects
                    with contextlib.suppress(APIConnectionError, InternalServerError):
                        show(client.jobs.get(job.id))
        except APIConnectionError:
            typer.echo(
                f"error: the API has been unreachable for {RECONNECT_GIVE_UP_SECONDS:.0f} s; "
                f"job {job.id} may still be running: see it later with `ponder show {job.id}`",
                err=True,
            )
            raise typer.Exit(1) from None
        return show(client.jobs.get(job.id))


@app.command()
def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=200)] = 20,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """List your most recent jobs (full ids, to paste into `ponder show`)."""
    from rich.console import Console

    with _client(api_url, api_key) as client:
        page = client.jobs.list(limit=limit, status=status or None)  # type: ignore[arg-type]
    Console().print(jobs_table([job.model_dump(mode="json") for job in page.data]))


def jobs_table(jobs: list[dict[str, Any]]) -> Any:
    """The table `ponder jobs` prints: ids are never shortened (they are what `ponder
    show` takes), the other columns wrap to fit the terminal."""
    from rich.table import Table

    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    for name in ("status", "stop reason", "strategy", "tokens", "answer", "verified"):
        table.add_column(name, overflow="fold")
    for j in jobs:
        result = j.get("result") or {}
        table.add_row(
            j["id"],
            j["status"],
            j.get("stop_reason") or "",
            j["strategy"]["name"],
            str(j["usage"]["tokens"]),
            str(result.get("answer", "")),
            str(result.get("verified", "")),
        )
    return table


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Show one job as JSON."""
    with _client(api_url, api_key) as client:
        typer.echo(_json(client.jobs.get(job_id)))


@batches_app.command("submit")
def batches_submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="A batch as JSON (`.json`: items, dataset or from_jobs) or its items as "
            'JSON Lines (any other name; optional first line {"batch": {...}}).'
        ),
    ],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Create a batch; prints it (with any refused items) as JSON."""
    if file.suffix == ".json":
        body = _read_object(file, "batch")
    else:
        try:
            content = file.read_bytes()
        except OSError as exc:
            typer.echo(f"error: cannot read {file}: {exc}", err=True)
            raise typer.Exit(2) from None
    with _client(api_url, api_key) as client:
        if file.suffix == ".json":
            batch = client.batches.create(**_as_arguments(client.batches.create, body))
        else:
            batch = client.batches.create(file=content)
    typer.echo(
        f"batch {batch.id}: {batch.accepted} item(s) accepted, {batch.rejected} refused",
        err=True,
    )
    typer.echo(_json(batch))


@batches_app.command("show")
def batches_show(
    batch_id: Annotated[str, typer.Argument(help="The batch's id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Show a batch and its figures as JSON."""
    with _client(api_url, api_key) as client:
        typer.echo(_json(client.batches.get(batch_id)))


@batches_app.command("results")
def batches_results(
    batch_id: Annotated[str, typer.Argument(help="The batch's id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Print the batch's results as JSON Lines, one item per line, in item order."""
    with _client(api_url, api_key) as client:
        for result in client.batches.results(batch_id):
            line = result.model_dump(mode="json")
            typer.echo(json.dumps(line, ensure_ascii=False, separators=(",", ":")))


@batches_app.command("cancel")
def batches_cancel(
    batch_id: Annotated[str, typer.Argument(help="The batch's id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Cancel a batch: items not started are cancelled, running ones stop soon."""
    with _client(api_url, api_key) as client:
        typer.echo(_json(client.batches.cancel(batch_id)))


@app.command()
def report(
    batch_ids: Annotated[list[str], typer.Argument(help="Batch ids to compare.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the chart (PNG).")] = Path(
        "report.png"
    ),
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Compare batches: a table of accuracy, tokens, cost and latency per strategy, and a
    PNG chart of accuracy against tokens per item (the figures of GET /v1/batches/{id})."""
    from rich.console import Console
    from rich.table import Table

    from ponder.report import plot_accuracy_vs_tokens, report_rows

    with _client(api_url, api_key) as client:
        batches = [client.batches.get(batch_id).model_dump(mode="json") for batch_id in batch_ids]
    rows = report_rows(batches)
    table = Table(
        "batch",
        "strategy",
        "model",
        "finished",
        "accuracy",
        "tokens",
        "tokens/item",
        "cost $",
        "p50 s",
        "p95 s",
        title="Ponder batch report",
    )

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for r in rows:
        accuracy = "-" if r.accuracy is None else f"{r.accuracy:.1%} of {r.scored}"
        table.add_row(
            r.label,
            r.strategy,
            r.model,
            f"{r.finished}/{r.items}",
            accuracy,
            str(r.tokens),
            num(r.mean_tokens, ".0f"),
            f"{r.cost_usd:.4f}",
            num(r.p50_seconds, ".2f"),
            num(r.p95_seconds, ".2f"),
        )
    Console(width=max(Console().width, 140)).print(table)
    for batch in batches:
        comparison = batch.get("comparison")
        if comparison:
            typer.echo(
                f"{batch['id'][:8]} vs the original jobs: solved {comparison['solved_before']}"
                f" -> {comparison['solved_after']} of {comparison['items']} "
                f"(+{comparison['improved']} / -{comparison['regressed']}), tokens "
                f"{comparison['tokens_before']} -> {comparison['tokens_after']}"
            )
    points = plot_accuracy_vs_tokens(rows, str(out))
    typer.echo(f"wrote {out} ({points} point(s): accuracy vs tokens per item)")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    processes: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: PONDER_WORKER_PROCESSES, else one per core)."
        ),
    ] = None,
    max_jobs: Annotated[
        int | None, typer.Option(help="Job slices each worker process runs at once.")
    ] = None,
    sim: Annotated[
        bool,
        typer.Option("--sim", help="Also serve the simulated model over HTTP (port 9100)."),
    ] = False,
    allow_private_webhooks: Annotated[
        bool,
        typer.Option(
            "--allow-private-webhooks",
            help="Development only: let webhooks go to private and loopback addresses "
            "(a receiver on this machine). Sets PONDER_WEBHOOK_ALLOW_PRIVATE=true.",
        ),
    ] = False,
) -> None:
    """Run the whole stack here, in one terminal: migrate the database, then the API,
    workers, beat (and with --sim the simulated model server), with each line of their
    logs prefixed. Uses the configured Postgres and Redis (PONDER_DATABASE_URL,
    PONDER_BROKER_URL). Ctrl-C stops everything; workers first hand back their jobs."""
    from ponder.migrate import describe_upgrade, upgrade
    from ponder.up import UpOptions, run_up

    def migrate(url: str) -> str:
        url = url or _settings().database_url
        _ensure_sqlite_dir(url)
        return describe_upgrade(*upgrade(url))

    options = UpOptions(
        host=host,
        port=port,
        processes=processes,
        max_jobs=max_jobs,
        sim=sim,
        allow_private_webhooks=allow_private_webhooks,
    )
    raise typer.Exit(run_up(options, migrate=migrate))


@app.command()
def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where to keep the demo's database and queue (default: a temp dir)."),
    ] = None,
    latency_ms: Annotated[
        float, typer.Option(help="Simulated model time to first token (ms).", min=0)
    ] = 0.0,
) -> None:
    """Run the whole service locally, no Postgres or Redis needed.

    Starts the API and a worker on SQLite with a file-based queue, submits Game of 24
    problems at several budgets through the real HTTP API (simulated model) and prints
    what each budget bought."""
    from ponder.demo import run_demo

    code = run_demo(workdir, latency_ms=latency_ms)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
