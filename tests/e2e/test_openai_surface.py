"""The OpenAI-compatible surface (``/openai/v1``) driven by the official ``openai`` package,
sync and async, against the whole service as processes (api, worker, simulated model):
chat completions (plain, ``n`` > 1, streamed with usage, Ponder's fields in the extra
body, the job id header fetched natively), background responses (queued → completed,
cancel, incomplete on a budget stop, streams resumed with ``starting_after``), webhooks in
OpenAI's format verified with ``client.webhooks.unwrap``, the Batch API end to end, the
models list, and errors (unknown model, bad budget, bad key, missing scope). One stack
serves the module: every test makes its own tenant."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.openai_compat.effort import EFFORT_BUDGETS
from tests.conftest import _admin_exec, _pg_url
from tests.stack import Stack, running_stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.e2e

# a model profile whose every call takes two seconds: jobs on it are still running when a
# test cancels them
SLOW_MODEL = "  - name: sim-slow\n    provider: sim\n    ttft_ms: 2000\n"
PUZZLE = [4, 9, 10, 13]
GAME24 = {"task": "game24", "input": {"numbers": PUZZLE}}
# no expression of these makes 24: no answer verifies, so jobs run to their budget
UNSOLVABLE = {"task": "game24", "input": {"numbers": [1, 1, 1, 1]}}
PROMPT = "Use the numbers 4 9 10 13 and the operations + - * / with parentheses to make 24."


@pytest.fixture(scope="module")
def stack(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = f"ponder_t_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        with running_stack(
            _pg_url(name),
            f"ponder-test-{uuid.uuid4().hex[:10]}",
            tmp_path_factory.mktemp("openai-stack"),
            extra_models=SLOW_MODEL,
        ) as s:
            yield s
    finally:
        _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def key(stack: Stack) -> str:
    return stack.new_key(f"openai-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(stack: Stack, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.api_url}/openai/v1", api_key=key) as c:
        yield c


@pytest.fixture
def native(stack: Stack, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as c:
        yield c


def finished_job(native: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once it has ended, long-polling the native API."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = native.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


# ------------------------------------------------------------------ chat completions


def test_a_chat_completion_is_a_job_whose_answer_usage_and_id_the_native_api_confirms(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="best_of_n/sim",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"ponder": {**GAME24, "params": {"n": 8}, "budget": {"max_tokens": 40000}}},
    )
    completion = raw.parse()
    job_id = raw.headers["Ponder-Job-Id"]
    job = native.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed"
    assert job["strategy"]["name"] == "best_of_n" and job["strategy"]["params"]["n"] == 8
    assert job["budget"]["max_tokens"] == 40000
    assert completion.id == "chatcmpl-" + job_id.replace("-", "")
    assert completion.model == "best_of_n/sim"
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == job["result"]["answer"]
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.total_tokens == job["usage"]["tokens"] > 0
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    extra = completion.model_extra or {}
    assert extra["ponder"]["job_id"] == job_id
    assert extra["ponder"]["verified"] == job["result"]["verified"]


def test_n_returns_the_top_distinct_candidates_best_first(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="best_of_n/sim",
        messages=[{"role": "user", "content": "make 24 from 1 1 1 1"}],
        n=3,
        extra_body={"ponder": {**UNSOLVABLE, "params": {"n": 12, "max_tokens": 64}, "seed": 7}},
    )
    completion = raw.parse()
    job = native.get(f"/v1/jobs/{raw.headers['Ponder-Job-Id']}").json()
    answers = [choice.message.content for choice in completion.choices]
    assert [choice.index for choice in completion.choices] == list(range(len(answers)))
    assert len(answers) == 3 and len(set(answers)) == 3, answers
    assert answers[0] == job["result"]["answer"]
    trace = native.get(f"/v1/jobs/{job['id']}/trace").json()
    scores: dict[str, float] = {}
    for event in trace["events"]:
        if event["kind"] == "candidate" and event["data"]["answer"] is not None:
            answer = event["data"]["answer"]
            scores[answer] = max(scores.get(answer, 0.0), event["data"]["score"])
    assert set(answers) <= set(scores)
    assert scores[answers[1]] >= scores[answers[2]]
    # the budget ran out before every candidate was drawn? then the answers are the best
    # so far ("length"); otherwise the search ran its course ("stop")
    expected = "length" if job["stop_reason"] == "budget_exhausted" else "stop"
    assert {choice.finish_reason for choice in completion.choices} == {expected}


def test_a_stream_shows_progress_then_the_answer_and_ends_with_usage(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    stream = client.chat.completions.create(
        model="best_of_n/sim",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ponder": {**GAME24, "params": {"n": 4, "batch_size": 1}}},
    )
    job_id = stream.response.headers["Ponder-Job-Id"]
    chunks = list(stream)
    job = native.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed"
    assert {c.id for c in chunks} == {"chatcmpl-" + job_id.replace("-", "")}
    assert chunks[0].choices[0].delta.role == "assistant"
    progress = [
        (c.choices[0].delta.model_extra or {}).get("reasoning_content")
        for c in chunks
        if c.choices and (c.model_extra or {}).get("ponder", {}).get("event")
    ]
    assert any(line and line.startswith("candidate ") for line in progress), progress
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == job["result"]["answer"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == job["usage"]["tokens"]
    assert all(c.usage is None for c in chunks[:-1])


def test_the_async_client_gets_the_same_service(stack: Stack, key: str) -> None:
    async def run() -> tuple[Any, Any, list[str]]:
        async with openai.AsyncOpenAI(
            base_url=f"{stack.api_url}/openai/v1", api_key=key
        ) as aclient:
            completion = await aclient.chat.completions.create(
                model="sim",
                messages=[{"role": "user", "content": PROMPT}],
                reasoning_effort="low",
                extra_body={"ponder": GAME24},
            )
            response = await aclient.responses.create(
                model="self_consistency/sim",
                input=PROMPT,
                background=True,
                extra_body={"ponder": {**GAME24, "params": {"n": 4}}},
            )
            models = [m.id async for m in aclient.models.list()]
            return completion, response, models

    completion, response, models = asyncio.run(run())
    assert completion.choices[0].message.content
    assert completion.model == "sim"
    assert response.status in ("queued", "in_progress", "completed")
    assert response.model == "self_consistency/sim"
    assert "sim" in models and "self_consistency/sim" in models


# ------------------------------------------------------------------ responses


def test_a_background_response_is_queued_then_completed(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    created = client.responses.create(
        model="sim",
        input=[{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}],
        background=True,
        reasoning={"effort": "low"},
        metadata={"run": "e2e"},
        extra_body={"ponder": GAME24},
    )
    assert created.status in ("queued", "in_progress")
    assert created.background is True and created.output == []
    job_id = (created.model_extra or {})["ponder"]["job_id"]
    assert created.id == "resp_" + job_id.replace("-", "")
    job = finished_job(native, job_id)
    budget = {k: v for k, v in job["budget"].items() if v is not None}
    assert budget == EFFORT_BUDGETS["low"]
    assert job["strategy"]["name"] == "auto" and job["metadata"] == {"run": "e2e"}

    done = client.responses.retrieve(created.id)
    assert done.status == "completed"
    assert done.output_text == job["result"]["answer"]
    assert done.reasoning is not None and done.reasoning.effort == "low"
    assert done.metadata == {"run": "e2e"}
    assert done.usage is not None and done.usage.total_tokens == job["usage"]["tokens"]
    reasoning = done.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary and "phase " in reasoning.summary[0].text


def test_cancelling_a_background_response(client: openai.OpenAI, native: httpx.Client) -> None:
    created = client.responses.create(
        model="best_of_n/sim-slow",
        input=[{"role": "user", "content": "make 24 from 1 1 1 1"}],
        instructions="Answer briefly.",
        background=True,
        extra_body={"ponder": {"params": {"n": 64, "batch_size": 1}}},
    )
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert cancelled.instructions == "Answer briefly."
    assert client.responses.retrieve(created.id).status == "cancelled"
    job = native.get(f"/v1/jobs/{(created.model_extra or {})['ponder']['job_id']}").json()
    assert job["status"] == "cancelled"
    # cancelling it again returns it; a finished response cannot be cancelled
    assert client.responses.cancel(created.id).status == "cancelled"


def test_a_budget_stop_is_incomplete_with_the_best_answer_so_far(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    created = client.responses.create(
        model="best_of_n/sim",
        input=PROMPT,
        background=True,
        extra_body={
            "ponder": {
                **UNSOLVABLE,
                "params": {"n": 16, "batch_size": 1},
                "budget": {"max_calls": 3},
            }
        },
    )
    job = finished_job(native, (created.model_extra or {})["ponder"]["job_id"])
    assert job["stop_reason"] == "budget_exhausted" and job["result"]["answer"]
    done = client.responses.retrieve(created.id)
    assert done.status == "incomplete"
    assert done.incomplete_details is not None
    assert done.incomplete_details.reason == "max_output_tokens"
    assert done.output_text == job["result"]["answer"]
    with pytest.raises(openai.BadRequestError, match="already finished"):
        client.responses.cancel(created.id)


def test_a_response_stream_resumes_after_any_sequence_number(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    stream = client.responses.create(
        model="best_of_n/sim",
        input=PROMPT,
        stream=True,
        background=True,
        extra_body={"ponder": {**GAME24, "params": {"n": 4, "batch_size": 1}}},
    )
    events = list(stream)
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.reasoning_summary_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    final = events[-1].response  # type: ignore[union-attr]
    job = native.get(f"/v1/jobs/{(final.model_extra or {})['ponder']['job_id']}").json()
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == job["result"]["answer"]

    for after in (0, 3, len(events) - 2):
        resumed = list(client.responses.retrieve(final.id, stream=True, starting_after=after))
        assert [e.sequence_number for e in resumed] == numbers[after + 1 :]
        assert [e.type for e in resumed] == kinds[after + 1 :]
    deltas = [e for e in events if e.type == "response.reasoning_summary_text.delta"]
    resumed_deltas = [
        e
        for e in client.responses.retrieve(final.id, stream=True)
        if e.type == "response.reasoning_summary_text.delta"
    ]
    assert [e.delta for e in resumed_deltas] == [e.delta for e in deltas]


def test_the_stream_helper_accumulates_the_response(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="best_of_n/sim", input=PROMPT, extra_body={"ponder": GAME24}
    ) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text


def test_webhooks_in_openai_format_verify_with_the_openai_package(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    receiver = Receiver(parse_plan("200"))
    url = receiver.start()
    try:
        created = client.responses.create(
            model="best_of_n/sim",
            input=PROMPT,
            background=True,
            extra_body={"ponder": {**GAME24, "webhook_url": f"{url}/hooks"}},
        )
        [delivery] = receiver.wait_for(1, timeout=120)
    finally:
        receiver.stop()
    secret = native.get("/v1/webhook-secrets").json()["secrets"][0]["secret"]
    event = client.webhooks.unwrap(delivery["body"], delivery["headers"], secret=secret)
    assert event.type == "response.completed"
    assert event.data.id == created.id
    assert event.id == "evt_" + delivery["headers"]["webhook-id"].removeprefix("msg_")
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(delivery["body"] + " ", delivery["headers"], secret=secret)


# ------------------------------------------------------------------ Batch API


def batch_line(custom_id: str, body: dict[str, Any]) -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def test_the_batch_api_runs_a_native_batch_with_output_and_error_files(
    client: openai.OpenAI, native: httpx.Client
) -> None:
    chat = {"messages": [{"role": "user", "content": PROMPT}]}
    lines = [
        batch_line("a", {"model": "best_of_n/sim", **chat, "ponder": GAME24}),
        batch_line("b", {"model": "sim", **chat, "n": 2, "ponder": {**UNSOLVABLE, "seed": 3}}),
        batch_line("unknown-model", {"model": "gpt-9", **chat}),
        "this line is not JSON",
        batch_line(
            "bad-budget",
            {"model": "sim", **chat, "ponder": {"budget": {"max_tokens": 10**12}}},
        ),
        batch_line("c", {"model": "refine/sim", **chat, "ponder": GAME24}),
    ]
    upload = client.files.create(
        file=("requests.jsonl", "\n".join(lines).encode()), purpose="batch"
    )
    assert upload.purpose == "batch" and upload.bytes == len("\n".join(lines).encode())
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"suite": "e2e"},
        extra_body={"ponder": {"budget": {"max_tokens": 400000}}},
    )
    assert batch.status == "in_progress" and batch.metadata == {"suite": "e2e"}
    assert batch.request_counts is not None and batch.request_counts.total == 6
    native_id = (batch.model_extra or {})["ponder"]["batch_id"]
    assert native.get(f"/v1/batches/{native_id}").json()["budget"]["max_tokens"] == 400000
    for item in native.get("/v1/jobs", params={"batch_id": native_id}).json()["data"]:
        finished_job(native, item["id"])
    deadline = time.monotonic() + 30
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)  # the batch completes right after its last item; no event to await
    counts = batch.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (6, 3, 3)
    assert batch.usage is not None and batch.usage.total_tokens > 0
    assert batch.output_file_id and batch.error_file_id

    output = {
        line["custom_id"]: line
        for line in map(json.loads, client.files.content(batch.output_file_id).text.splitlines())
    }
    assert set(output) == {"a", "b", "c"}
    for custom_id, line in output.items():
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        job = native.get(f"/v1/jobs/{body['ponder']['job_id']}").json()
        assert job["custom_id"] == custom_id and job["batch_id"] == native_id
        assert body["usage"]["total_tokens"] == job["usage"]["tokens"]
    assert output["b"]["response"]["body"]["model"] == "sim"
    assert len(output["b"]["response"]["body"]["choices"]) == 2

    errors = client.files.content(batch.error_file_id).text.splitlines()
    refused = {(e["custom_id"], e["error"]["line"]): e["error"] for e in map(json.loads, errors)}
    assert refused[("unknown-model", 3)]["code"] == "model_not_found"
    assert refused[(None, 4)]["code"] == "invalid_json_line"
    assert "ponder.budget.max_tokens" in refused[("bad-budget", 5)]["message"]
    assert [b.id for b in client.batches.list()] == [batch.id]
    with pytest.raises(openai.BadRequestError, match="already completed"):
        client.batches.cancel(batch.id)


def test_a_batch_cancelled_ends_its_unstarted_requests_in_the_error_file(
    client: openai.OpenAI,
) -> None:
    lines = [
        batch_line(
            f"slow-{i}",
            {
                "model": "best_of_n/sim-slow",
                "messages": [{"role": "user", "content": PROMPT}],
                "ponder": {**UNSOLVABLE, "params": {"n": 32, "batch_size": 1}},
            },
        )
        for i in range(12)
    ]
    upload = client.files.create(file=("slow.jsonl", "\n".join(lines).encode()), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    deadline = time.monotonic() + 60
    while (batch := client.batches.retrieve(batch.id)).status != "cancelled":
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)  # running items stop before their next call (two seconds each)
    assert batch.error_file_id is not None
    codes = {
        json.loads(line)["error"]["code"]
        for line in client.files.content(batch.error_file_id).text.splitlines()
        if json.loads(line)["error"] is not None
    }
    assert codes == {"batch_cancelled"}


# ------------------------------------------------------------------ models and errors


def test_models_lists_every_name_a_request_may_use(client: openai.OpenAI) -> None:
    names = [m.id for m in client.models.list()]
    assert {"sim", "sim-http", "sim-slow", "best_of_n/sim", "mcts/sim-http"} <= set(names)
    assert client.models.retrieve("best_of_n/sim").id == "best_of_n/sim"


def test_errors_have_openais_shape(stack: Stack, client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9", messages=messages)  # type: ignore[arg-type]
    assert unknown.value.status_code == 404 and unknown.value.code == "model_not_found"
    assert unknown.value.param == "model" and "GET /openai/v1/models" in unknown.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")

    with pytest.raises(openai.BadRequestError) as budget:
        client.chat.completions.create(
            model="sim",
            messages=messages,  # type: ignore[arg-type]
            extra_body={"ponder": {"budget": {"max_tokens": 10**12}}},
        )
    assert budget.value.status_code == 400 and budget.value.param == "ponder.budget.max_tokens"
    assert "must be at most" in budget.value.message
    with pytest.raises(openai.BadRequestError) as effort:
        client.responses.create(model="sim", input=PROMPT, reasoning={"effort": "max"})
    assert effort.value.param == "reasoning.effort" and "low" in effort.value.message

    with (
        openai.OpenAI(
            base_url=f"{stack.api_url}/openai/v1", api_key="pk_not_a_key", max_retries=0
        ) as stranger,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        stranger.models.list()
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"

    reader = stack.cli("keys", "create", "--tenant", "readers", "--scope", "read")
    read_only = reader.stdout.strip().splitlines()[-1]
    with openai.OpenAI(base_url=f"{stack.api_url}/openai/v1", api_key=read_only) as limited:
        with pytest.raises(openai.PermissionDeniedError, match="submit"):
            limited.chat.completions.create(model="sim", messages=messages)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError):
            limited.responses.retrieve("resp_" + uuid.uuid4().hex)
