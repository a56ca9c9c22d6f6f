"""Traces: OpenTelemetry spans of each job, from the request that submits it to the model
calls its slices make, when the optional ``ponder[otel]`` extra is installed and the
standard ``OTEL_*`` variables ask for them.

When tracing is on (see :func:`setup`):

* the API's ``ponder.submit`` span covers a submission; the job's row keeps that span's
  W3C ``traceparent`` (the ``trace_context`` column), so every slice of the job, on
  whichever worker and however often it is handed back or resumed, joins the same trace;
* each slice is a ``ponder.slice`` span (claim to hand-off or final state), a child of
  the submission;
* under a slice: one ``chat {model}`` span per billed model call, with the OpenTelemetry
  GenAI attributes (``gen_ai.operation.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.usage.output_tokens``) and Ponder's (``ponder.cost_usd``, the job's budget
  limits and what remains of them, ``ponder.replayed`` for a call answered from the
  journal); ``ponder.verify`` per verifier call; ``ponder.reward`` per reward model
  call; ``ponder.journal.write`` per journal write, for each caller of the group commit
  (the write's wait to be durable; ``ponder.commit.group_size`` says how many writes
  shared its transaction).

When it is off (the default), or the extra is not installed, nothing here imports
OpenTelemetry: :func:`span` hands back one shared no-op context manager, so a call
site costs a function call.

The core never imports a web or queue framework: the trace context travels as a plain
dict of W3C headers (:func:`carrier`), stored with the job.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

AttrValue = str | bool | int | float | Sequence[str]
Attributes = Mapping[str, AttrValue]
# the W3C trace context headers of a span (``traceparent``, maybe ``tracestate``)
Carrier = dict[str, str]

TRACER_NAME = "ponder"


class SpanLike(Protocol):
    """What call sites do with a span: an OpenTelemetry span, or :data:`NO_SPAN`."""

    def set_attribute(self, key: str, value: AttrValue) -> None: ...

    def is_recording(self) -> bool: ...


class _NoSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: AttrValue) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NO_SPAN: SpanLike = _NoSpan()
NOOP: AbstractContextManager[SpanLike] = nullcontext(NO_SPAN)

# set by setup() or install(); None: tracing is off
_tracer: Tracer | None = None
_owned: TracerProvider | None = None  # a provider this module made (shut down by it)


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    parent: Carrier | None = None,
    start_time: int | None = None,
    kind: str = "internal",
) -> AbstractContextManager[SpanLike]:
    """A span named ``name``, current while the ``with`` block runs (exceptions that
    leave it are recorded and mark it failed). Its parent is the current span, or the
    span ``parent`` describes (a :func:`carrier`). ``start_time`` is in nanoseconds
    since the epoch (:func:`now_ns`); ``kind`` is ``internal``, ``server``,
    ``client``, ``producer`` or ``consumer``. A no-op when tracing is off."""
    tracer = _tracer
    if tracer is None:
        return NOOP
    return _start(tracer, name, attributes, parent, start_time, kind)


def _start(
    tracer: Tracer,
    name: str,
    attributes: Attributes | None,
    parent: Carrier | None,
    start_time: int | None,
    kind: str,
) -> AbstractContextManager[SpanLike]:
    from opentelemetry.trace import SpanKind

    context = None
    if parent:
        context = _propagator().extract(parent)
    return tracer.start_as_current_span(
        name,
        context=context,
        kind=SpanKind[kind.upper()],
        attributes=attributes,
        start_time=start_time,
    )


def _propagator() -> TraceContextTextMapPropagator:
    """W3C trace context, whatever ``OTEL_PROPAGATORS`` says: the context stored with a
    job is read back only by Ponder."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def now_ns() -> int:
    """The time as spans take it (``start_time``)."""
    return time.time_ns()


def current_span() -> SpanLike:
    """The span current here (:data:`NO_SPAN` when tracing is off or there is none)."""
    if _tracer is None:
        return NO_SPAN
    from opentelemetry.trace import get_current_span

    return get_current_span()


def carrier() -> Carrier | None:
    """The current span as W3C trace context headers (to store or send, and to give
    :func:`span` as ``parent`` in another process); None when tracing is off or no span
    is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    if not get_current_span().get_span_context().is_valid:
        return None
    headers: Carrier = {}
    _propagator().inject(headers)
    return headers or None


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids (hex, as trace viewers show them), for log lines;
    None when tracing is off or no span is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)


BUDGET_DIMENSIONS = ("max_tokens", "max_calls", "max_cost_usd", "max_seconds")


def budget_limits(budget: Mapping[str, Any] | None) -> dict[str, AttrValue]:
    """``ponder.budget.max_*`` attributes of a job's budget (the caps it has)."""
    if not budget:
        return {}
    return {
        f"ponder.budget.{name}": budget[name]
        for name in BUDGET_DIMENSIONS
        if isinstance(budget.get(name), int | float)
    }


# ---- turning it on --------------------------------------------------------------------


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for: ``OTEL_TRACES_EXPORTER`` (a comma
    separated list; ``none`` for none), else ``otlp`` when an OTLP endpoint is set
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), else
    none: tracing stays off."""
    raw = (environ.get("OTEL_TRACES_EXPORTER") or "").strip()
    if not raw:
        if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        ):
            return ["otlp"]
        return []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else names


def setup(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process if the environment asks for it; returns whether
    it is on.

    It is on when the OpenTelemetry SDK is installed (``pip install 'ponder[otel]'``),
    ``OTEL_SDK_DISABLED`` is not ``true``, and either a tracer provider was set up
    already (e.g. by ``opentelemetry-instrument``) or :func:`exporter_names` names an
    exporter: ``otlp`` (OTLP over HTTP/protobuf, configured by the exporter's own
    ``OTEL_EXPORTER_OTLP_*`` variables; ``grpc`` as the protocol needs
    ``opentelemetry-exporter-otlp-proto-grpc``), ``console`` (one JSON object per span
    on standard output) or the name of any installed exporter plugin. The service name
    is ``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``), else
    ``service_name``. Sampling, span limits and batching follow the SDK's own variables
    (``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ...)."""
    env = os.environ if environ is None else environ
    if _tracer is not None:
        return True
    if _is_true(env.get("OTEL_SDK_DISABLED")):
        return False
    names = exporter_names(env)
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        if names:
            log.warning(
                "OTEL_* variables ask for traces, but the OpenTelemetry SDK is not "
                "installed: install it with pip install 'ponder[otel]' (tracing is off)"
            )
        return False
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        install(existing, own=False)
        return True
    if not names:
        return False
    exporters = [e for e in (_exporter(name, env) for name in names) if e is not None]
    if not exporters:
        return False
    provider = TracerProvider(resource=_resource(service_name))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install(provider, own=True)
    log.info("tracing on: spans go to %s", ", ".join(names))
    return True


def _resource(service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    named = resource.attributes.get(SERVICE_NAME)
    if not named or str(named).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def _console_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stdout, formatter=_console_line)
    if name == "otlp":
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        try:
            if protocol == "grpc":  # not in the extra: its own package, if installed
                grpc = importlib.import_module(
                    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
                )
                exporter: SpanExporter = grpc.OTLPSpanExporter()
                return exporter
            if protocol != "http/protobuf":
                log.warning(
                    "OTLP protocol %r is not supported for traces: use http/protobuf or "
                    "grpc (no spans are exported over OTLP)",
                    protocol,
                )
                return None
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )

            return HttpExporter()
        except ImportError:
            package = "opentelemetry-exporter-otlp-proto-" + (
                "grpc" if protocol == "grpc" else "http"
            )
            log.warning(
                "the OTLP span exporter needs %s: install it (or pip install "
                "'ponder[otel]'); no spans are exported over OTLP",
                package,
            )
            return None
    return _plugin_exporter(name)


def _plugin_exporter(name: str) -> SpanExporter | None:
    from importlib.metadata import entry_points

    found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
    if not found:
        log.warning(
            "OTEL_TRACES_EXPORTER names %r, but no span exporter by that name is installed "
            "(use otlp, console or none)",
            name,
        )
        return None
    try:
        exporter: SpanExporter = found[0].load()()
    except Exception as exc:
        log.warning("span exporter %r could not be started: %s", name, exc)
        return None
    return exporter


def install(provider: TracerProvider, *, own: bool = False) -> None:
    """Send this module's spans to ``provider`` (tests use one with an in-memory
    exporter). ``own``: :func:`uninstall` shuts it down."""
    global _tracer, _owned
    _tracer = provider.get_tracer(TRACER_NAME)
    _owned = provider if own else None


def uninstall() -> None:
    """Turn tracing off again (flushing a provider :func:`setup` made)."""
    global _tracer, _owned
    owned, _tracer, _owned = _owned, None, None
    if owned is not None:
        owned.shutdown()
