"""Reward models (ponder.llm.reward): the HTTP contract against the simulator's server,
the simulated PRM, reward profiles, and beam_search's ``prm`` scorer as a durable job."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.simulator import create_sim_app
from ponder.auth import create_api_key
from ponder.budget import BudgetLimits, Ledger
from ponder.config import Settings
from ponder.families import get_task
from ponder.families.game24 import format_prompt, legal_steps
from ponder.llm.base import AuthError, BadRequest, ProviderUnavailable, RateLimited, RewardModel
from ponder.llm.profiles import (
    ModelProfile,
    ModelsFileError,
    build_provider,
    build_reward_model,
    load_models_file,
    public_view,
)
from ponder.llm.retry import RetryPolicy
from ponder.llm.reward import (
    MAX_ITEMS_PER_REQUEST,
    HttpRewardModel,
    RewardModels,
)
from ponder.memjournal import MemoryJournal
from ponder.problem import Problem
from ponder.runtime import Context
from ponder.sim.model import SimProvider
from ponder.sim.reward import SimRewardModel
from strategies.registry import get_strategy
from tests.jobs_helpers import (
    CountingProvider,
    Crash,
    create_job,
    expire_lease,
    load_job,
    run_until_done,
)
from tests.strategy_harness import (
    GAME24_EASY,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
)
from worker.celery_app import dispatcher_for
from worker.runner import WorkerServices, run_slice

T = TypeVar("T")

PROMPT = format_prompt([4, 9, 10, 13])
GOOD_PATH = ["13 - 9 = 4 (left: 4 4 10)", "10 - 4 = 6 (left: 4 6)", "4 * 6 = 24 (left: 24)"]
DEAD_PATH = ["4 + 9 = 13 (left: 10 13 13)", "13 + 13 = 26 (left: 10 26)"]
PROFILE = ModelProfile(name="prm-http", provider="reward", base_url="http://sim", model="sim-prm-1")


# --- the HTTP client against `ponder sim serve`'s app -------------------------------------


async def _no_sleep(_: float) -> None:
    return None


def with_model(
    use: Callable[[HttpRewardModel], Awaitable[T]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    profile: ModelProfile = PROFILE,
    sleeps: list[float] | None = None,
) -> T:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    async def go() -> T:
        tr = transport or httpx.ASGITransport(app=create_sim_app(SimProvider()))
        async with httpx.AsyncClient(transport=tr) as client:
            model = HttpRewardModel(
                profile,
                client=client,
                sleep=fake_sleep,
                retry_policy=RetryPolicy(max_retries=profile.max_retries, base_s=0.01),
            )
            return await use(model)

    return asyncio.run(go())


def test_score_steps_over_http_matches_the_in_process_model() -> None:
    paths = [GOOD_PATH, DEAD_PATH, GOOD_PATH[:1], []]
    remote = with_model(lambda m: m.score_steps(PROMPT, paths))
    local = asyncio.run(SimRewardModel().score_steps(PROMPT, paths))
    assert remote == local
    assert [len(r) for r in remote] == [3, 2, 1, 0]
    assert remote[0][-1] > 0.8 and remote[1][-1] < 0.2  # 24 reached vs 10 26
    assert all(0.0 <= x <= 1.0 for row in remote for x in row)


def test_score_over_http_matches_the_in_process_model() -> None:
    candidates = ["Answer: (13 - 9) * (10 - 4)", "4 + 9 + 10 + 13", "no idea"]
    remote = with_model(lambda m: m.score(PROMPT, candidates))
    assert remote == asyncio.run(SimRewardModel().score(PROMPT, candidates))
    assert remote[0] > 0.8 > remote[1] and remote[2] < 0.2


def test_large_calls_are_split_into_bounded_requests() -> None:
    seen: list[int] = []
    inner = httpx.ASGITransport(app=create_sim_app(SimProvider()))

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(len(json.loads(request.content)["paths"]))
            return await inner.handle_async_request(request)

    paths = [GOOD_PATH[:1]] * (MAX_ITEMS_PER_REQUEST + 6)
    scores = with_model(lambda m: m.score_steps(PROMPT, paths), transport=Spy())
    assert seen == [MAX_ITEMS_PER_REQUEST, 6]
    assert len(scores) == len(paths) and len({tuple(r) for r in scores}) == 1


class Flaky(httpx.AsyncBaseTransport):
    """Answers the first ``failures`` requests with ``status``, then lets the sim answer."""

    def __init__(self, failures: int, status: int = 500, headers: dict[str, str] | None = None):
        self.failures = failures
        self.status = status
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []
        self.inner = httpx.ASGITransport(app=create_sim_app(SimProvider()))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.failures:
            body = {"error": {"message": "the GPU fell over"}}
            return httpx.Response(self.status, json=body, headers=self.headers)
        return await self.inner.handle_async_request(request)


def test_500_then_success_is_retried_with_backoff() -> None:
    flaky = Flaky(failures=2)
    sleeps: list[float] = []
    scores = with_model(
        lambda m: m.score_steps(PROMPT, [GOOD_PATH]), transport=flaky, sleeps=sleeps
    )
    assert len(flaky.requests) == 3 and len(sleeps) == 2
    assert scores == asyncio.run(SimRewardModel().score_steps(PROMPT, [GOOD_PATH]))
    assert flaky.requests[0].url.path == "/score_steps"


def test_retry_after_is_honoured_and_429_becomes_rate_limited() -> None:
    sleeps: list[float] = []
    profile = PROFILE.model_copy(update={"max_retries": 2})
    flaky = Flaky(failures=10, status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited, match="HTTP 429 after 3 attempt"):
        with_model(
            lambda m: m.score(PROMPT, ["x"]), transport=flaky, profile=profile, sleeps=sleeps
        )
    assert sleeps == [7.0, 7.0]


def test_5xx_forever_is_unavailable() -> None:
    profile = PROFILE.model_copy(update={"max_retries": 1})
    with pytest.raises(ProviderUnavailable, match=r"keeps failing.*GPU fell over"):
        with_model(lambda m: m.score(PROMPT, ["x"]), transport=Flaky(10), profile=profile)


def canned(status: int, body: Any) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<html>proxy error</html>", "not JSON"),
        ([0.5], "not a JSON object"),
        ({"score": [0.5]}, "no 'scores' list"),
        ({"scores": [[0.5, "high"]]}, r"scores\[0\]\[1\] is not a number"),
        ({"scores": [[0.5, 1.5]]}, r"outside \[0, 1\]"),
        ({"scores": [0.5]}, r"scores\[0\] is not a list"),
    ],
)
def test_malformed_responses_are_unavailable(body: Any, why: str) -> None:
    with pytest.raises(ProviderUnavailable, match=why):
        with_model(lambda m: m.score_steps(PROMPT, [GOOD_PATH[:2]]), transport=canned(200, body))


def test_wrong_number_of_scores_is_an_error() -> None:
    too_few = canned(200, {"scores": [[0.5, 0.5]]})
    with pytest.raises(ProviderUnavailable, match=r"1 score entries for 2 path\(s\)"):
        with_model(lambda m: m.score_steps(PROMPT, [GOOD_PATH[:2]] * 2), transport=too_few)
    short_row = canned(200, {"scores": [[0.5]]})
    with pytest.raises(ProviderUnavailable, match=r"1 score\(s\) for a path of 2 step"):
        with_model(lambda m: m.score_steps(PROMPT, [GOOD_PATH[:2]]), transport=short_row)
    with pytest.raises(ProviderUnavailable, match=r"2 score entries for 1 candidate"):
        with_model(lambda m: m.score(PROMPT, ["x"]), transport=canned(200, {"scores": [1, 0]}))


def test_client_errors_are_typed_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadRequest, match=r"HTTP 422.*bad paths"):
        with_model(lambda m: m.score(PROMPT, ["x"]), transport=canned(422, {"detail": "bad paths"}))
    monkeypatch.setenv("PRM_KEY", "sk-test-123456")
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"error": "key sk-test-123456 revoked"})

    profile = PROFILE.model_copy(update={"api_key_env": "PRM_KEY"})
    with pytest.raises(AuthError) as caught:
        with_model(
            lambda m: m.score(PROMPT, ["x"]),
            transport=httpx.MockTransport(handler),
            profile=profile,
        )
    assert seen == ["Bearer sk-test-123456"]
    assert "sk-test-123456" not in str(caught.value) and "PRM_KEY" in str(caught.value)


def test_the_sim_server_checks_the_reward_model_name() -> None:
    bad = PROFILE.model_copy(update={"model": "other-prm"})
    with pytest.raises(BadRequest, match=r"HTTP 404.*does not exist"):
        with_model(lambda m: m.score(PROMPT, ["x"]), profile=bad)


def test_empty_calls_make_no_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    transport = httpx.MockTransport(handler)
    assert with_model(lambda m: m.score(PROMPT, []), transport=transport) == []
    assert with_model(lambda m: m.score_steps(PROMPT, []), transport=transport) == []


# --- the simulated PRM --------------------------------------------------------------


def test_sim_reward_model_is_deterministic_and_prefix_consistent() -> None:
    model = SimRewardModel()
    paths = [GOOD_PATH, DEAD_PATH, ["not a step", GOOD_PATH[1]]]
    first = asyncio.run(model.score_steps(PROMPT, paths))
    again = asyncio.run(SimRewardModel().score_steps(PROMPT, list(reversed(paths))))
    assert first == list(reversed(again))
    # a step's score depends on its prefix only, not on what else is in the batch
    alone = asyncio.run(model.score_steps(PROMPT, [GOOD_PATH[:2]]))
    assert alone[0] == first[0][:2]
    assert first[2] == [0.0, 0.0]  # an invalid step, and everything after it
    # free-form prompts get a neutral score with noise
    neutral = asyncio.run(model.score_steps("What is 2 + 2?", [["2 + 2 = 4"]]))
    assert 0.3 < neutral[0][0] < 0.7


def _solvable(values: list[Fraction]) -> bool:
    if len(values) == 1:
        return values[0] == 24
    return any(_solvable(list(step.left)) for step in legal_steps(values))


def _ranking_accuracy(depth: int, puzzles: int = 120) -> float:
    """How often a path that can still reach 24 outscores a dead end of the same length
    (one random pair per puzzle that has both)."""
    rows = [
        json.loads(line)
        for line in (Path("ponder/datasets/data/game24-all.jsonl").read_text().splitlines())
    ]
    rng = random.Random(11)
    model = SimRewardModel()
    wins = total = 0
    for row in rng.sample(rows, puzzles):
        numbers = row["input"]["numbers"]
        paths: list[list[str]] = [[]]
        lefts: list[list[Fraction]] = [[Fraction(n) for n in numbers]]
        for _ in range(depth):
            nxt_paths, nxt_lefts = [], []
            for path, left in zip(paths, lefts, strict=True):
                for step in legal_steps(left):
                    nxt_paths.append([*path, step.line()])
                    nxt_lefts.append(list(step.left))
            paths, lefts = nxt_paths, nxt_lefts
        alive = [p for p, lf in zip(paths, lefts, strict=True) if _solvable(lf)]
        dead = [p for p, lf in zip(paths, lefts, strict=True) if not _solvable(lf)]
        if not alive or not dead:
            continue
        good, bad = rng.choice(alive), rng.choice(dead)
        scores = asyncio.run(model.score_steps(format_prompt(numbers), [good, bad]))
        total += 1
        wins += scores[0][-1] > scores[1][-1]
    assert total >= puzzles // 2
    return wins / total


def test_sim_prm_ranks_live_paths_above_dead_ends() -> None:
    # one step in, three numbers are left and the PRM only glances at them
    assert _ranking_accuracy(depth=1) > 0.55
    # two steps in, two numbers are left: the heuristic is exact, only noise is left
    assert _ranking_accuracy(depth=2) > 0.9


# --- profiles ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_builtin_sim_prm_and_a_reward_profile_load(tmp_path: Path) -> None:
    profiles = load_models_file(
        write(
            tmp_path,
            "models:\n"
            "  - name: my-prm\n"
            "    provider: reward\n"
            "    base_url: http://u:pw@127.0.0.1:9100\n"
            "    model: prm-7b\n"
            "    api_key_env: PRM_KEY\n",
        )
    )
    assert list(profiles) == ["sim", "sim-prm", "my-prm"]
    assert profiles["sim-prm"].provider == "sim-reward" and profiles["sim-prm"].is_reward
    view = public_view(profiles["my-prm"])
    assert view["kind"] == "reward" and view["provider"] == "reward"
    assert "base_url" not in view and "127.0.0.1" not in repr(view)
    assert "pw" not in repr(view) and "PRM_KEY" not in repr(view)
    assert view["capabilities"] == {"supports_n": False, "score": True, "score_steps": True}
    assert public_view(profiles["sim"])["kind"] == "chat"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (
            "name: p\n    provider: reward\n    model: m\n",
            "base_url is required for provider 'reward'",
        ),
        (
            "name: p\n    provider: sim-reward\n    base_url: http://x\n",
            "base_url does not apply to provider 'sim-reward'",
        ),
        (
            "name: p\n    provider: reward\n    base_url: http://x\n    model: m\n"
            "    price_in_per_mtok: 1\n",
            "not billed",
        ),
        (
            "name: p\n    provider: reward\n    base_url: http://x\n    model: m\n"
            "    supports_n: false\n",
            "supports_n does not apply",
        ),
        ("name: sim-prm\n    provider: sim-reward\n", "'sim-prm' is the built-in"),
    ],
)
def test_reward_profile_errors_name_the_field(tmp_path: Path, entry: str, needle: str) -> None:
    with pytest.raises(ModelsFileError, match=needle):
        load_models_file(write(tmp_path, "models:\n  - " + entry))


def test_build_provider_refuses_reward_profiles_and_vice_versa() -> None:
    sim_prm = load_models_file(None)["sim-prm"]
    with pytest.raises(ValueError, match=r"reward model.*cannot generate text"):
        build_provider(sim_prm)
    with pytest.raises(ValueError, match="is a chat model"):
        build_reward_model(load_models_file(None)["sim"])
    assert isinstance(build_reward_model(sim_prm), SimRewardModel)
    http = build_reward_model(PROFILE)
    assert isinstance(http, HttpRewardModel)
    asyncio.run(http.aclose())


def test_reward_models_lookup_names_what_exists() -> None:
    lookup = RewardModels(load_models_file(None))
    assert lookup("sim-prm") is lookup("sim-prm")  # built once, kept
    with pytest.raises(
        ValueError, match="unknown reward model 'nope'; reward model profiles: sim-prm"
    ):
        lookup("nope")
    with pytest.raises(ValueError, match=r"'sim' is a chat model.*profiles: sim-prm"):
        lookup("sim")


# --- the API -----------------------------------------------------------------------

JOB: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "beam_search", "params": {"scorer": "prm"}},
}


@pytest.fixture
def api(sqlite_settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(
        create_app(sqlite_settings, dispatcher=dispatcher_for(sqlite_settings))
    ) as client:
        key = create_api_key(client.app.state.sessions, "acme")  # type: ignore[attr-defined]
        yield client, {"Authorization": f"Bearer {key}"}


def test_a_reward_profile_as_the_job_model_is_a_422(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    response = client.post("/v1/jobs", json={**JOB, "model": "sim-prm"}, headers=headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "'sim-prm' is a reward model" in detail and "chat models: sim" in detail
    listed = {m["name"]: m for m in client.get("/v1/models", headers=headers).json()}
    assert listed["sim-prm"]["kind"] == "reward" and listed["sim"]["kind"] == "chat"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"scorer": "prm", "reward_model": "nope"}, "unknown reward model 'nope'"),
        ({"scorer": "prm", "reward_model": "sim"}, "'sim' is not a reward model"),
        ({"scorer": "prm", "reward_model": None}, "scorer 'prm' needs reward_model"),
    ],
)
def test_bad_reward_model_params_are_a_422(
    api: tuple[TestClient, dict[str, str]], params: dict[str, Any], needle: str
) -> None:
    client, headers = api
    body = {**JOB, "strategy": {"name": "beam_search", "params": params}}
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]
    ok = client.post("/v1/jobs", json=JOB, headers=headers)
    assert ok.status_code == 202, ok.text


# --- the Context ---------------------------------------------------------------------


def make_ctx(
    reward_models: Callable[[str], RewardModel] | None,
    journal: MemoryJournal | None = None,
    max_tokens: int = 1000,
) -> Context:
    problem = Problem(task="game24", input={"numbers": [4, 9, 10, 13]})
    task = get_task("game24")
    return Context(
        problem=problem,
        task=task,
        provider=SimProvider(),
        price=lambda usage: 0.0,
        verifier=task.default_verifier(),
        ledger=Ledger(BudgetLimits(max_tokens=max_tokens)),
        journal=journal if journal is not None else MemoryJournal(),
        seed=1,
        clock=time.monotonic,
        reward_models=reward_models,
    )


def test_score_steps_needs_a_known_reward_model() -> None:
    with pytest.raises(ValueError, match="has no reward models configured"):
        make_ctx(None).score_steps([GOOD_PATH], reward_model="sim-prm")
    with pytest.raises(ValueError, match="profiles: sim-prm"):
        make_ctx(RewardModels(load_models_file(None))).score_steps([GOOD_PATH], reward_model="x")


def test_score_steps_is_journaled_unbilled_and_replayed() -> None:
    counting = CountingRewardModel(SimRewardModel())
    journal = MemoryJournal()
    ctx = make_ctx(lambda name: counting, journal)

    async def go(c: Context) -> list[list[float]]:
        return await c.score_steps([GOOD_PATH, DEAD_PATH], reward_model="sim-prm")

    first = asyncio.run(go(ctx))
    assert counting.calls == 1 and ctx.ledger.spent.calls == 0 and ctx.ledger.spent.tokens == 0
    (record,) = journal.steps.values()
    assert record.kind == "reward" and record.result == {"scores": first}
    again = make_ctx(lambda name: counting, journal)
    assert asyncio.run(go(again)) == first
    assert counting.calls == 1 and again.replayed_calls == 1


# --- beam_search with scorer "prm", as a durable job ---------------------------------

MEDIUM = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
PRM = {"name": "beam_search", "params": {"scorer": "prm"}}
PRM_WIDE = {
    "name": "beam_search",
    "params": {"scorer": "prm", "beam_width": 5, "k": 8, "propose_max_tokens": 320},
}


def test_prm_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(sqlite_settings, MEDIUM, PRM_WIDE, {"max_tokens": 20_000})


def test_prm_tight_budget(sqlite_settings: Settings) -> None:
    job = check_tight_budget(sqlite_settings, MEDIUM, PRM, {"max_tokens": 700})
    assert job.result is not None and job.result["verified"] is False


def test_prm_resume(sqlite_settings: Settings) -> None:
    # Call 1 expands the root; calls 2-4 expand the three beams of level 1 (one wave).
    check_resume(sqlite_settings, MEDIUM, PRM, {"max_tokens": 20_000}, crash_at=4)


def test_prm_resume_one_call_at_a_time(sqlite_settings: Settings) -> None:
    strategy = {"name": "beam_search", "params": {"scorer": "prm", "parallel": 1}}
    check_resume(sqlite_settings, MEDIUM, strategy, {"max_tokens": 20_000}, crash_at=3)


def test_prm_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_EASY, PRM, {"max_tokens": 20_000}, after_calls=1)


class CountingRewardModel:
    def __init__(self, inner: RewardModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.requests: list[list[list[str]]] = []

    async def score(self, prompt: str, candidates: list[str]) -> list[float]:
        return await self.inner.score(prompt, candidates)

    async def score_steps(self, prompt: str, paths: list[list[str]]) -> list[list[float]]:
        self.calls += 1
        self.requests.append(paths)
        return await self.inner.score_steps(prompt, paths)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _services(
    settings: Settings, rewards: list[CountingRewardModel], crash_at: int | None = None
) -> WorkerServices:
    def reward_factory(profile: ModelProfile) -> CountingRewardModel:
        model = CountingRewardModel(build_reward_model(profile))
        rewards.append(model)
        return model

    return WorkerServices(
        settings,
        provider_factory=lambda p: CountingProvider(SimProvider(p.name), crash_at=crash_at),
        reward_model_factory=reward_factory,
    )


def test_resume_replays_journaled_reward_calls(sqlite_settings: Settings) -> None:
    budget = {"max_tokens": 20_000}
    kwargs: dict[str, Any] = {"problem": MEDIUM, "strategy": PRM, "budget": budget, "seed": 7}

    reference: list[CountingRewardModel] = []
    ref_id = create_job(sqlite_settings, **kwargs)
    svc = _services(sqlite_settings, reference)
    run_until_done(svc, ref_id)
    svc.close()
    ref_requests = reference[0].requests
    assert len(ref_requests) >= 2, "the run scores at least two levels"

    job_id = create_job(sqlite_settings, **kwargs)
    crashed: list[CountingRewardModel] = []
    dying = _services(sqlite_settings, crashed, crash_at=3)  # after level 1 was scored
    with pytest.raises(Crash):
        run_slice(dying, job_id, owner="doomed")
    dying.close()
    assert crashed[0].calls == 1
    expire_lease(sqlite_settings, job_id)
    resumed: list[CountingRewardModel] = []
    svc = _services(sqlite_settings, resumed)
    run_until_done(svc, job_id)
    svc.close()

    # the level scored before the crash came back from the journal, not the PRM
    assert resumed[0].requests == ref_requests[1:]
    done, ref = load_job(sqlite_settings, job_id), load_job(sqlite_settings, ref_id)
    assert (done.status, done.result) == (ref.status, ref.result)


def test_unknown_reward_model_fails_the_job_clearly(sqlite_settings: Settings) -> None:
    strategy = {"name": "beam_search", "params": {"scorer": "prm", "reward_model": "gone"}}
    job_id = create_job(sqlite_settings, problem=MEDIUM, strategy=strategy)
    svc = _services(sqlite_settings, [])
    run_until_done(svc, job_id)
    svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.status == "failed" and job.usage_calls == 0
    assert job.error is not None
    assert "unknown reward model 'gone'; reward model profiles: sim-prm" in job.error


def test_offline_prm_beam_search_matches_the_durable_one() -> None:
    from strategies.offline import run_offline

    result = asyncio.run(
        run_offline(
            MEDIUM,
            "beam_search",
            {"scorer": "prm"},
            {"max_tokens": 20_000},
            provider=SimProvider(),
            seed=3,
        )
    )
    assert result.verified
    levels = [d for k, d in result.events if k == "level"]
    assert levels and all(0.0 <= s <= 1.0 for lv in levels for s in lv["scores"])


def test_prm_scorer_makes_no_evaluation_calls() -> None:
    problem = Problem(task="game24", input={"numbers": [4, 9, 10, 13]})
    counting = CountingRewardModel(SimRewardModel())
    journal = MemoryJournal()
    ctx = make_ctx(lambda name: counting, journal, max_tokens=20_000)
    asyncio.run(get_strategy("beam_search").run(problem, ctx, {"scorer": "prm"}))
    assert ctx.best is not None and ctx.best.verdict.passed
    kinds = [r.kind for r in journal.steps.values()]
    assert kinds.count("reward") == counting.calls >= 1
    # every billed call is a propose call: one per beam per level
    assert ctx.ledger.spent.calls <= 1 + 3 + 3
