"""The OpenAI-compatible surface's translation, without a database: model names, effort
budgets, error fields renamed to the request's, answers ranked for ``n``, the stream of a
response numbered the same for every reader, and webhook event types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ponder import openai_ids
from ponder.llm.profiles import load_models_file
from ponder.openai_compat import chat, responses
from ponder.openai_compat.effort import EFFORT_BUDGETS
from ponder.openai_compat.errors import ModelNotFound, OpenAIRequestError, Origins, param_for
from ponder.openai_compat.models import model_names, model_of, resolve
from ponder.openai_compat.progress import describe
from ponder.openai_compat.reads import Answer, Tokens, _rank, split_tokens
from ponder.tables import Job
from ponder.webhooks.openai_events import event_type, response_status
from strategies.registry import CATALOG

MODELS = load_models_file(None)
MESSAGES = [{"role": "user", "content": "What is 6 times 7?"}]


def plan(body: dict[str, Any]) -> Any:
    return chat.plan(chat.parse_request(body), MODELS, CATALOG)


def test_a_model_is_a_profile_or_strategy_slash_profile() -> None:
    assert resolve("sim", MODELS, CATALOG).strategy == "auto"
    choice = resolve("best_of_n/sim", MODELS, CATALOG)
    assert (choice.strategy, choice.profile, choice.name) == ("best_of_n", "sim", "best_of_n/sim")
    for unknown in ("gpt-4o", "best_of_n/gpt-4o", "nope/sim", "sim-prm", "best_of_n/sim-prm"):
        with pytest.raises(ModelNotFound) as raised:
            resolve(unknown, MODELS, CATALOG)
        assert raised.value.status == 404 and raised.value.error_code == "model_not_found"
    names = model_names(MODELS, CATALOG)
    assert names[0] == "sim" and "sim-prm" not in names and "mcts/sim" in names


def test_the_model_shown_is_the_name_given_else_derived_from_the_job() -> None:
    assert model_of({"name": "auto"}, "sim", None) == "sim"
    assert model_of({"name": "refine"}, "sim", None) == "refine/sim"
    assert model_of({"name": "auto"}, "sim", {"model": "auto/sim"}) == "auto/sim"


def test_the_budget_comes_from_ponder_then_effort_then_the_token_cap() -> None:
    given = plan(
        {
            "model": "sim",
            "messages": MESSAGES,
            "reasoning_effort": "high",
            "ponder": {"budget": {"max_calls": 3}},
        }
    )
    assert given.job.budget.max_calls == 3 and given.origins.budget == "ponder.budget"
    effort = plan({"model": "sim", "messages": MESSAGES, "reasoning_effort": "high"})
    assert effort.job.budget.model_dump(exclude_none=True) == EFFORT_BUDGETS["high"]
    assert effort.openai["reasoning_effort"] == "high"
    capped = plan({"model": "sim", "messages": MESSAGES, "max_completion_tokens": 900})
    assert capped.job.budget.max_tokens == 900
    assert capped.origins.budget == "max_completion_tokens"
    assert plan({"model": "sim", "messages": MESSAGES}).job.budget is None


def test_efforts_grow() -> None:
    order = ["minimal", "low", "medium", "high", "xhigh"]
    assert list(EFFORT_BUDGETS) == order
    for field in ("max_tokens", "max_calls", "max_seconds"):
        values = [EFFORT_BUDGETS[e][field] for e in order]
        assert values == sorted(values) and len(set(values)) == len(values)


def test_messages_and_ponders_problem_fields() -> None:
    job = plan(
        {
            "model": "sim",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "ponder": {"expected": "42"},
            "seed": 5,
            "metadata": {"k": "v"},
        }
    ).job
    assert [m.model_dump() for m in job.problem.messages] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\nb"},
    ]
    assert job.problem.expected == "42" and job.seed == 5 and job.metadata == {"k": "v"}
    task = plan(
        {
            "model": "sim",
            "messages": MESSAGES,
            "ponder": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
        }
    ).job
    assert task.problem.task == "game24" and task.problem.messages is None
    with pytest.raises(OpenAIRequestError, match=r"give ponder\.task with it"):
        plan({"model": "sim", "messages": MESSAGES, "ponder": {"input": {}}})


def test_a_response_request_becomes_a_job() -> None:
    request = responses.parse_request(
        {
            "model": "refine/sim",
            "instructions": "Be brief.",
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                }
            ],
            "reasoning": {"effort": "minimal"},
            "background": True,
        }
    )
    made = responses.plan(request, MODELS, CATALOG)
    assert made.job.strategy.name == "refine"
    assert [m.role for m in made.job.problem.messages] == ["system", "user"]
    assert made.openai == {
        "object": "response",
        "background": True,
        "instructions": True,
        "model": "refine/sim",
        "reasoning_effort": "minimal",
    }
    assert made.origins.messages == "input" and made.origins.budget == "reasoning.effort"


@pytest.mark.parametrize(
    ("loc", "origins", "param"),
    [
        (["body", "budget", "max_tokens"], Origins(), "ponder.budget.max_tokens"),
        (
            ["budget", "max_tokens"],
            Origins(budget="reasoning_effort", effort="high"),
            "reasoning_effort",
        ),
        (["budget", "max_tokens"], Origins(budget="max_output_tokens"), "max_output_tokens"),
        (["body", "strategy", "name"], Origins(), "model"),
        (["body", "strategy", "params", "n"], Origins(), "ponder.params.n"),
        (["problem", "messages", 2, "content"], Origins(messages="input"), "input[2].content"),
        (["problem", "task"], Origins(), "ponder.task"),
        (["problem"], Origins(), "messages"),
        (["body", "webhook_url"], Origins(), "ponder.webhook_url"),
        (["seed"], Origins(seed="ponder.seed"), "ponder.seed"),
        (["metadata"], Origins(), "metadata"),
    ],
)
def test_field_errors_name_the_requests_own_fields(
    loc: list[Any], origins: Origins, param: str
) -> None:
    assert param_for(loc, origins) == param


def test_answers_rank_verified_then_score_then_order_distinct() -> None:
    best = Answer("b", 0.9, False)
    events = [
        {"answer": "a", "score": 0.2, "passed": False},
        {"answer": "b", "score": 0.9, "passed": False},
        {"answer": "c", "score": 0.5, "passed": False},
        {"answer": "a", "score": 0.6, "passed": False},
        {"answer": None, "score": 1.0},
        {"answer": "d", "score": 0.1, "passed": True},
        {"answer": "e", "score": 0.5},
    ]
    ranked = _rank([best], events, 10)
    assert [a.text for a in ranked] == ["b", "d", "a", "c", "e"]
    assert _rank([], events, 2) == [Answer("d", 0.1, True), Answer("b", 0.9, False)]


def test_tokens_split_into_prompt_and_completion_summing_to_the_spend() -> None:
    assert split_tokens(100, 30, 5) == Tokens(30, 70, 5)
    # a crash's lost reservation counts as completion; counts never go negative
    assert split_tokens(10, 30, 50) == Tokens(10, 0, 0)
    assert split_tokens(100, 30, 5).total == 100


def job(status: str = "completed", stop_reason: str | None = "verified", **more: Any) -> Job:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "6d0f5fb7-50ac-4547-8485-ea1c56e66f65",
        "status": status,
        "stop_reason": stop_reason,
        "strategy": {"name": "best_of_n", "params": {}},
        "model": "sim",
        "problem": {"messages": MESSAGES},
        "meta": {"n": 1},
        "result": {"answer": "42", "score": 1.0, "verified": True},
        "usage_tokens": 100,
        "usage_calls": 2,
        "usage_cost_usd": 0.0,
        "usage_seconds": 1.5,
        "created_at": now,
        "finished_at": now,
        "openai": None,
        "error": None,
    }
    values.update(more)
    return Job(**values)


def stream_of(finished: Job, lines: list[str], answer: Answer | None) -> list[dict[str, Any]]:
    state = responses.ResponseStream()
    events = state.opening(finished)
    for line in lines:
        events += state.progress(finished, line)
    return events + state.closing(finished, answer, Tokens(60, 40, 0))


def test_a_response_stream_is_numbered_the_same_for_every_reader() -> None:
    finished = job()
    answer = Answer("42", 1.0, True)
    events = stream_of(finished, ["started", "candidate 0: 42"], answer)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events == stream_of(finished, ["started", "candidate 0: 42"], answer)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.reasoning_summary_text.delta") == 2
    final = events[-1]["response"]
    assert final["output"][0]["summary"][0]["text"] == "started\ncandidate 0: 42\n"
    assert final["output"][1]["content"][0]["text"] == "42"
    assert final["usage"]["total_tokens"] == 100 and final["model"] == "best_of_n/sim"
    assert final["metadata"] == {"n": "1"}
    # the added and done events of each output item carry the same item
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    assert (
        added
        == done
        == [openai_ids.public_id("rs_", finished.id), openai_ids.public_id("msg_", finished.id)]
    )


@pytest.mark.parametrize(
    ("status", "stop_reason", "shown", "last"),
    [
        ("queued", None, "queued", None),
        ("running", None, "in_progress", None),
        ("completed", "verified", "completed", "response.completed"),
        ("completed", "search_exhausted", "completed", "response.completed"),
        ("completed", "budget_exhausted", "incomplete", "response.incomplete"),
        ("completed", "deadline", "incomplete", "response.incomplete"),
        ("completed", "daily_spend_limit", "incomplete", "response.incomplete"),
        ("failed", "error", "failed", "response.failed"),
        ("cancelled", "cancelled", "cancelled", "response.failed"),
    ],
)
def test_statuses_and_final_events(
    status: str, stop_reason: str | None, shown: str, last: str | None
) -> None:
    assert response_status(status, stop_reason) == shown
    if last is None:
        return
    assert event_type(status, stop_reason) == f"response.{shown}"
    events = stream_of(job(status, stop_reason), [], Answer("x", 0.1, False))
    assert events[-1]["type"] == last and events[-1]["response"]["status"] == shown


def test_a_chat_completion_of_a_job() -> None:
    finished = job(stop_reason="budget_exhausted")
    body = chat.completion(
        finished,
        [Answer("42", 0.5, False), Answer("41", 0.2, False)],
        Tokens(60, 40, 3),
        "best_of_n/sim",
    )
    assert body["id"] == "chatcmpl-6d0f5fb750ac45478485ea1c56e66f65"
    assert [c["message"]["content"] for c in body["choices"]] == ["42", "41"]
    assert {c["finish_reason"] for c in body["choices"]} == {"length"}
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3
    empty = chat.completion(finished, [], Tokens(1, 2, 0), "sim")
    assert [c["message"]["content"] for c in empty["choices"]] == [None]


def test_ids_round_trip() -> None:
    row = "6d0f5fb7-50ac-4547-8485-ea1c56e66f65"
    shown = openai_ids.public_id(openai_ids.RESPONSE, row)
    assert openai_ids.row_id(openai_ids.RESPONSE, shown) == row
    assert openai_ids.row_id(openai_ids.RESPONSE, row) == row
    assert openai_ids.row_id(openai_ids.RESPONSE, "resp_nope") is None


def test_progress_lines_say_what_happened() -> None:
    assert describe("candidate", {"index": 3, "answer": "12", "score": 0.25, "passed": False}) == (
        "candidate 3: 12, score 0.25, not verified"
    )
    assert (
        describe("phase", {"phase": "probe", "max_tokens": 256}) == "phase probe (max_tokens 256)"
    )
    assert len(describe("other", {"x": "y" * 1000})) == 300


# ------------------------------------------------------------------ on SQLite


def test_a_response_runs_and_reads_back_in_embedded_mode(sqlite_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from ponder.auth import create_api_key
    from tests.jobs_helpers import load_job, run_until_done
    from worker.celery_app import dispatcher_for
    from worker.runner import WorkerServices

    app = create_app(sqlite_settings, dispatcher=dispatcher_for(sqlite_settings))
    with TestClient(app) as client:
        key = create_api_key(client.app.state.sessions, "acme")  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {key}"}
        created = client.post(
            "/openai/v1/responses",
            json={
                "model": "best_of_n/sim",
                "input": "make 24",
                "background": True,
                "ponder": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
            },
            headers=headers,
        ).json()
        job_id = created["ponder"]["job_id"]
        run_until_done(WorkerServices(sqlite_settings), job_id)
        done = client.get(f"/openai/v1/responses/{created['id']}", headers=headers).json()
        streamed = client.get(
            f"/openai/v1/responses/{created['id']}", params={"stream": "true"}, headers=headers
        ).text
    job = load_job(sqlite_settings, job_id)
    assert done["status"] == "completed" and job.result is not None
    assert done["output"][1]["content"][0]["text"] == job.result["answer"]
    usage = done["usage"]
    assert usage["total_tokens"] == job.usage_tokens
    assert 0 < usage["input_tokens"] < usage["total_tokens"]
    assert "candidate 0: " in done["output"][0]["summary"][0]["text"]
    assert streamed.rstrip().endswith("}") and "event: response.completed" in streamed
