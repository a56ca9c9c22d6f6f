"""The Python client (``clients/python``, ``ponder_client``) cannot drift from the API.

- Its models are generated from the API document (``clients/python/scripts/
  generate_types.py``): generating them again from this server's document must give the
  file as checked in, byte for byte. A field added, removed, renamed or retyped on the
  server fails here until ``make client-types`` is run.
- Every operation under ``/v1/`` is either a client method or listed as left out on
  purpose, and each method takes the operation's path, query and body fields (names and
  whether they are required), returns the model of its answer, and exists alike on the
  sync and the async client.
"""

from __future__ import annotations

import collections.abc
import importlib.util
import inspect
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ponder_client
from api.main import create_app
from ponder.config import Settings
from ponder_client import AsyncPonder, Ponder
from worker.celery_app import dispatcher_for

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "clients" / "python" / "scripts" / "generate_types.py"
MODELS = ROOT / "clients" / "python" / "ponder_client" / "types" / "_models.py"

# Every operation of the native API and the client method that calls it; None: left out
# of the client on purpose (with why).
OPERATIONS: dict[tuple[str, str], str | None] = {
    ("POST", "/v1/jobs"): "jobs.create",
    ("GET", "/v1/jobs"): "jobs.list",
    ("GET", "/v1/jobs/{job_id}"): "jobs.get",
    ("POST", "/v1/jobs/{job_id}/cancel"): "jobs.cancel",
    ("GET", "/v1/jobs/{job_id}/events"): "jobs.stream",
    ("GET", "/v1/jobs/{job_id}/trace"): "jobs.trace",
    ("GET", "/v1/jobs/{job_id}/deliveries"): "jobs.deliveries",
    ("POST", "/v1/batches"): "batches.create",
    ("GET", "/v1/batches"): "batches.list",
    ("GET", "/v1/batches/{batch_id}"): "batches.get",
    ("GET", "/v1/batches/{batch_id}/results"): "batches.results",
    ("POST", "/v1/batches/{batch_id}/cancel"): "batches.cancel",
    ("POST", "/v1/datasets"): "datasets.create",
    ("GET", "/v1/datasets"): "datasets.list",
    ("GET", "/v1/datasets/{dataset_id}"): "datasets.get",
    ("DELETE", "/v1/datasets/{dataset_id}"): "datasets.delete",
    ("POST", "/v1/schedules"): "schedules.create",
    ("GET", "/v1/schedules"): "schedules.list",
    ("GET", "/v1/schedules/{schedule_id}"): "schedules.get",
    ("PATCH", "/v1/schedules/{schedule_id}"): "schedules.update",
    ("DELETE", "/v1/schedules/{schedule_id}"): "schedules.delete",
    ("POST", "/v1/schedules/{schedule_id}/trigger"): "schedules.trigger",
    ("POST", "/v1/schedules/{schedule_id}/backfill"): "schedules.backfill",
    ("GET", "/v1/schedules/{schedule_id}/runs"): "schedules.runs",
    ("GET", "/v1/webhook-secrets"): "webhook_secrets.list",
    ("POST", "/v1/webhook-secrets/rotate"): "webhook_secrets.rotate",
    ("GET", "/v1/deliveries/{delivery_id}"): "deliveries.get",
    ("POST", "/v1/deliveries/{delivery_id}/redeliver"): "deliveries.redeliver",
    ("GET", "/v1/models"): "models.list",
    ("GET", "/v1/strategies"): "strategies.list",
    ("GET", "/v1/system"): "system.get",
    ("POST", "/v1/keys"): "keys.create",
    ("GET", "/v1/keys"): "keys.list",
    ("GET", "/v1/keys/{key_id}"): "keys.get",
    ("DELETE", "/v1/keys/{key_id}"): "keys.revoke",
    # the operators' endpoints: `ponder tenants limits` manages them
    ("GET", "/v1/admin/tenants/{name}/limits"): None,
    ("PATCH", "/v1/admin/tenants/{name}/limits"): None,
}

# Keyword arguments of the client that are no field of the request, per method (the
# same for every method: timeout).
CLIENT_ONLY: dict[str, set[str]] = {
    "jobs.create": {"extra_body"},
    "jobs.stream": {"reconnect", "max_outage", "on_disconnect", "on_reconnect"},
    "batches.create": {"file", "idempotency_key", "extra_body"},
    "datasets.create": {"file", "problems", "idempotency_key"},
    "schedules.create": {"idempotency_key", "extra_body"},
    "schedules.update": {"extra_body"},
}
# Request fields a method leaves out on purpose.
NOT_TAKEN: dict[str, set[str]] = {
    # `after` is the same as the Last-Event-ID header, which the method takes
    "jobs.stream": {"after"},
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite:///{scratch}/unused.db",
        broker_url=f"filesystem://{scratch}/broker",
        models_file=None,
    )
    dispatcher = dispatcher_for(settings)
    try:
        schema: dict[str, Any] = create_app(settings, dispatcher=dispatcher).openapi()
    finally:
        dispatcher.close()
    return schema


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_types", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_models_are_what_the_server_document_generates(document: dict[str, Any]) -> None:
    generated = _generator().generate(document)
    assert generated == MODELS.read_text(), (
        "ponder_client's models differ from the API document: run `make client-types` "
        "(clients/python/scripts/generate_types.py) and commit the result"
    )


def test_the_generated_models_load_and_hold_every_schema_field(document: dict[str, Any]) -> None:
    generator = _generator()
    schemas = document["components"]["schemas"]
    used = generator.used_schemas(document)
    assert {"JobPublic", "JobCreate", "BatchPublic", "ScheduleDetail", "ProblemDetail"} <= used
    for name in used:
        cls = getattr(ponder_client.types, generator.RENAMES.get(name, name))
        schema = schemas[name]
        assert list(cls.model_fields) == list(schema.get("properties", {})), name
        required = {field for field, info in cls.model_fields.items() if info.is_required()}
        assert required == set(schema.get("required", [])), name


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    }


def test_every_operation_is_a_method_or_left_out_on_purpose(document: dict[str, Any]) -> None:
    found = set(_operations(document))
    assert found - set(OPERATIONS) == set(), (
        "operations the client does not know: add a method for each (and a line here)"
    )
    assert set(OPERATIONS) - found == set(), "operations the server no longer has"


def _method(client: Any, dotted: str) -> Any:
    resource, name = dotted.split(".")
    return getattr(getattr(client, resource), name)


def _body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    for option in schema.get("anyOf", []):
        if "$ref" in option:
            schema = option
    ref = schema.get("$ref")
    if ref:
        resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _parameter_name(raw: str) -> str:
    return raw.lower().replace("-", "_")


@pytest.mark.parametrize(
    ("key", "dotted"), [(k, v) for k, v in OPERATIONS.items() if v is not None], ids=str
)
def test_each_method_takes_the_fields_of_its_operation(
    document: dict[str, Any], key: tuple[str, str], dotted: str
) -> None:
    operation = _operations(document)[key]
    wanted: dict[str, bool] = {}  # field -> required
    positional: list[str] = []
    for parameter in operation.get("parameters", []):
        name = _parameter_name(parameter["name"])
        if parameter["in"] == "path":
            positional.append(name)
        else:
            wanted[name] = bool(parameter.get("required"))
    body = _body_schema(document, operation)
    required_body = set(body.get("required", []))
    for name in body.get("properties", {}):
        wanted[name] = name in required_body
    for name in NOT_TAKEN.get(dotted, set()):
        wanted.pop(name)

    for client_class in (Ponder, AsyncPonder):
        client = client_class(base_url="http://127.0.0.1:9", api_key="pk_unused")
        signature = inspect.signature(_method(client, dotted))
        params = signature.parameters
        assert [n for n, p in params.items() if p.kind == p.POSITIONAL_OR_KEYWORD] == positional, (
            f"{client_class.__name__}.{dotted}: its positional ids"
        )
        keywords = {n: p for n, p in params.items() if p.kind == p.KEYWORD_ONLY}
        extra = set(keywords) - set(wanted) - CLIENT_ONLY.get(dotted, set()) - {"timeout"}
        assert extra == set(), f"{dotted} takes what the API does not: {extra}"
        missing = set(wanted) - set(keywords)
        assert missing == set(), f"{dotted} lacks fields of {key}: {missing}"
        for name, required in wanted.items():
            has_default = keywords[name].default is not inspect.Parameter.empty
            assert has_default != required, f"{dotted}({name}=...): required is {required}"


def _response_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            content = response.get("content", {})
            schema: dict[str, Any] = content.get("application/json", {}).get("schema", {})
            return schema
    raise AssertionError("no success response")


def _schema_name(cls: Any) -> str:
    renames: dict[str, str] = _generator().RENAMES
    back = {client: server for server, client in renames.items()}
    return back.get(cls.__name__, cls.__name__)


@pytest.mark.parametrize(
    ("key", "dotted"), [(k, v) for k, v in OPERATIONS.items() if v is not None], ids=str
)
def test_each_method_returns_the_model_of_its_answer(
    document: dict[str, Any], key: tuple[str, str], dotted: str
) -> None:
    operation = _operations(document)[key]
    schema = _response_schema(document, operation)
    schemas = document["components"]["schemas"]
    resource, name = dotted.split(".")
    cls = type(getattr(Ponder(base_url="http://127.0.0.1:9", api_key="pk_unused"), resource))
    returned = typing.get_type_hints(getattr(cls, name))["return"]
    origin, args = typing.get_origin(returned), typing.get_args(returned)
    if returned is type(None):
        assert not schema, f"{dotted} returns nothing, the API answers {schema}"
        return
    if origin is None:  # one model
        assert schema.get("$ref", "").rsplit("/", 1)[-1] == _schema_name(returned), dotted
        return
    (item,) = args
    if origin in (collections.abc.Iterator, collections.abc.AsyncIterator):
        # a stream (events, JSON Lines): its lines are described in words, not as JSON
        assert schema == {}, f"{dotted} streams, the API answers JSON"
        return
    # a list or a page: the answer is an array of the item, or an object holding one
    if schema.get("type") == "array":
        items = schema["items"]
    else:
        wrapper = schemas[schema["$ref"].rsplit("/", 1)[1]]
        arrays = [p for p in wrapper["properties"].values() if p.get("type") == "array"]
        assert len(arrays) == 1, f"{dotted}: which list does it return?"
        items = arrays[0]["items"]
    assert items["$ref"].rsplit("/", 1)[1] == _schema_name(item), dotted


def test_sync_and_async_clients_have_the_same_methods() -> None:
    sync = Ponder(base_url="http://127.0.0.1:9", api_key="pk_unused")
    asynchronous = AsyncPonder(base_url="http://127.0.0.1:9", api_key="pk_unused")
    resources = [name for name in vars(sync) if not name.startswith("_")]
    resources = [name for name in resources if hasattr(getattr(sync, name), "_client")]
    assert resources == [name for name in vars(asynchronous) if name in resources]
    for resource in resources:
        mine = getattr(sync, resource)
        theirs = getattr(asynchronous, resource)
        methods = {n for n in dir(mine) if not n.startswith("_")}
        assert methods == {n for n in dir(theirs) if not n.startswith("_")}, resource
        for name in methods:
            a = inspect.signature(getattr(mine, name))
            b = inspect.signature(getattr(theirs, name))
            assert list(a.parameters) == list(b.parameters), f"{resource}.{name}"
