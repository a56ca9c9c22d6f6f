"""The durable Context strategies run in.

Every model and verifier call goes through a :class:`Context`. A call's journal key is
assigned when the call is *issued* (``ctx.sample(...)`` is a plain function that returns an
awaitable), in program order, so concurrent calls under ``asyncio.gather`` get the same
keys on every run. A call whose key is already journaled returns its stored result at once
and costs nothing: resuming a job means running its strategy again from the top.
Strategies must be deterministic given the journal: randomness only from ``ctx.rng``.

Three kinds of journaled call: ``sample`` (a chat model; billed to the job's budget),
``verify`` (the job's verifier; unbilled) and ``reward`` (a reward model scoring
answers, :meth:`Context.score`, or partial solutions, :meth:`Context.score_steps`;
unbilled).

Verifiers that call models go through the same machinery: the Context implements
:class:`~ponder.verifiers.base.VerifierContext`, and under a
:class:`~ponder.verifiers.base.ModelVerifier` (one that asks a judge or a reward model)
:meth:`Context.verify` hands the check to the verifier, which asks for a judge call
(:meth:`Context.judge`: a billed ``sample`` call on the judge model's provider, at that
profile's prices, whose journaled result carries the verdict under ``"judge"``) or a
:meth:`Context.score` call. Either way the key is taken when ``verify`` is called and a
resumed run gets the journaled verdict back without calling anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ponder import metrics, telemetry
from ponder.budget import BudgetExhausted, DeadlineExceeded, Ledger, Reservation, Spend
from ponder.errors import ErrorCode, PonderError
from ponder.families import Task, messages_for
from ponder.llm.base import (
    Completion,
    Message,
    Provider,
    ProviderError,
    SampleRequest,
    SampleResult,
    Usage,
    estimate_prompt_tokens,
)
from ponder.problem import Problem
from ponder.verifiers.base import JudgeRequest, ModelVerifier, Verdict, Verifier

if TYPE_CHECKING:
    from ponder.llm.base import RewardModel

T = TypeVar("T")

RewardModelLookup = Callable[[str], "RewardModel"]
PriceFn = Callable[[Usage], float]
# model profile name -> its provider / its prices (for calls to models other than the
# job's own, e.g. a judge verifier's)
ProviderLookup = Callable[[str], Provider]
PriceLookup = Callable[[str], PriceFn]

# A single sample is still worth issuing with this few completion tokens when the
# budget cannot cover the strategy's full request.
MIN_SAMPLE_TOKENS = 32

# How long a slice that gives up on calls in flight waits for their loss to be journaled.
ABANDON_WRITE_SECONDS = 5.0


class Cancelled(PonderError):
    """The client cancelled the job."""

    code = ErrorCode.CANCELLED


class LeaseLost(PonderError):
    """Another worker owns the job now (this one is a zombie): stop without writing."""

    code = ErrorCode.LEASE_LOST


class SliceExpired(PonderError):
    """This slice has run long enough: hand the job back and continue in a new task."""

    code = ErrorCode.SLICE_EXPIRED


class WorkerStopping(SliceExpired):
    """The worker is shutting down: hand the job back now, after the calls in flight."""


class NonDeterminism(PonderError):
    """A resumed strategy issued a different call than the journal recorded under a key."""

    code = ErrorCode.NON_DETERMINISM


@dataclass(frozen=True)
class StepRecord:
    key: int
    kind: str
    digest: str
    result: dict[str, Any]


class Journal(Protocol):
    """Where a Context persists what it does. Every write is fenced: it raises
    :class:`LeaseLost` once another worker has taken the job over."""

    steps: dict[int, StepRecord]
    strategy_events: int  # strategy events already persisted by earlier runs

    async def begin_paid_step(self, key: int, kind: str, digest: str, reserved: Spend) -> None:
        """Record a reservation before a billed call; returns once it is durable. Raises
        Cancelled if the job was cancelled (nothing is recorded then)."""

    async def complete_paid_step(
        self, key: int, kind: str, digest: str, result: dict[str, Any], charged: Spend
    ) -> None:
        """Journal a billed call's result and its charge; returns once it is durable."""

    async def abandon_step(self, key: int, forfeited: Spend | None) -> None:
        """A billed call failed; ``forfeited`` is spend to count anyway (usage unknown)."""

    def record_free_step(self, key: int, kind: str, digest: str, result: dict[str, Any]) -> None:
        """Journal an unbilled call's result (may be buffered until the next write)."""

    def add_event(self, kind: str, data: dict[str, Any], *, strategy: bool) -> None: ...

    def set_best(self, best: dict[str, Any]) -> None: ...

    def set_progress(self, progress: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...

    @property
    def cancel_requested(self) -> bool: ...

    @property
    def lease_lost(self) -> bool: ...


@dataclass(frozen=True)
class Candidate:
    answer: str
    verdict: Verdict

    def rank(self) -> tuple[bool, float]:
        return (self.verdict.passed, self.verdict.score)


_ANSWER_RE = re.compile(r"answer\s*:\s*(.+)", re.IGNORECASE)


def generic_parse_answer(text: str) -> str | None:
    """The text after the last ``Answer:``, else the last non-empty line."""
    matches = _ANSWER_RE.findall(text)
    if matches:
        return str(matches[-1]).strip() or None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def derive_seed(seed: int, key: int) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _digest(kind: str, payload: dict[str, Any]) -> str:
    raw = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _sample_result_to_json(result: SampleResult) -> dict[str, Any]:
    return {
        "completions": [asdict(c) for c in result.completions],
        "usage": asdict(result.usage),
        "model": result.model,
    }


def _completions_from_json(data: dict[str, Any]) -> list[Completion]:
    return [Completion(**c) for c in data["completions"]]


class Clock(Protocol):
    def __call__(self) -> float: ...


class Context:
    """What a strategy sees. Build one per run (slice) with :meth:`__init__`; the runner
    owns the lifecycle and calls :meth:`drain` when the strategy stops."""

    def __init__(
        self,
        *,
        problem: Problem,
        task: Task | None,
        provider: Provider,
        price: PriceFn,
        verifier: Verifier,
        ledger: Ledger,
        journal: Journal,
        seed: int,
        clock: Clock,
        seconds_before: float = 0.0,
        slice_seconds: float | None = None,
        reward_models: RewardModelLookup | None = None,
        providers: ProviderLookup | None = None,
        prices: PriceLookup | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        """``providers`` and ``prices`` look up other chat models by profile name (a
        judge verifier's); without them only the job's own model (by its provider's
        name) can judge. A verifier's models are looked up now
        (:meth:`ModelVerifier.prepare`), so a job whose judge or reward model does not
        exist fails before spending anything.

        ``stopping`` says whether the worker is shutting down: once it returns True no
        new call starts (:class:`WorkerStopping`), as when the slice's time is up."""
        self.problem = problem
        self.task = task
        self.rng = random.Random(seed)
        self.ledger = ledger
        self._provider = provider
        self._price = price
        self._verifier = verifier
        self._reward_models = reward_models
        self._providers = providers
        self._prices = prices
        self._stopping = stopping
        self._journal = journal
        self._seed = seed
        self._clock = clock
        self._started = clock()
        self._seconds_before = seconds_before
        self._slice_seconds = slice_seconds
        self._next_key = 0
        self._event_count = 0
        self._best: Candidate | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._issued = 0  # billed calls this run issued (not replayed)
        self._received = Spend()  # usage of every sample result handed to the strategy
        self.new_calls = 0  # billed calls this run completed
        self.replayed_calls = 0
        self._chat_models: dict[str, tuple[Provider, PriceFn]] = {}
        self._model_verifier = verifier if isinstance(verifier, ModelVerifier) else None
        if self._model_verifier is not None:
            self._model_verifier.prepare(self)

    # ---- what strategies use -------------------------------------------------------

    def messages(self) -> list[Message]:
        return messages_for(self.problem)

    def parse_answer(self, text: str) -> str | None:
        """The candidate answer in a completion: the task's parser; for verifiers that
        read whole completions (code checked by tests), all of it; else the text after
        the last ``Answer:``."""
        if self.task is not None:
            return self.task.parse_answer(text)
        if getattr(self._verifier, "reads_whole_completion", False):
            return text if text.strip() else None
        return generic_parse_answer(text)

    def sample(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        max_tokens: int = 512,
        temperature: float = 0.8,
        stop: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Awaitable[list[Completion]]:
        """Ask the model for up to ``n`` completions. Fewer come back when the budget only
        covers fewer; :class:`BudgetExhausted` is raised when it covers none."""
        key = self._take_key()
        payload = {
            "messages": messages,
            "n": n,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stop": stop,
        }
        if extra:
            payload["extra"] = extra
        digest = _digest("sample", payload)
        record = self._replay(key, "sample", digest)
        if record is not None:
            with self._chat_span(key, "sample", self._provider, replayed=True):
                self._account(record.result, self._price)
            return _ready(_completions_from_json(record.result))
        request, reservation = self._issue(
            key,
            digest,
            messages,
            n=n,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            extra=extra,
            price=self._price,
        )
        return self._spawn(self._run_sample(key, digest, request, reservation))

    def verify(self, answer: str | None) -> Awaitable[Verdict]:
        """Check a candidate answer with the job's verifier (journaled; unbilled, except
        that a judge verifier's model call is billed like any other)."""
        if answer is None:
            return _ready(Verdict(False, 0.0, "no answer found in the model's output"))
        if self._model_verifier is not None:
            return self._model_verifier.verify_in(self, self.problem, answer)
        key = self._take_key()
        digest = _digest("verify", {"answer": answer})
        record = self._replay(key, "verify", digest)
        if record is not None:
            return _ready(Verdict.from_json(record.result))
        return self._spawn(self._run_verify(key, digest, answer))

    def reward_model(self, name: str) -> RewardModel:
        """The reward model profile ``name``; ``ValueError`` saying which reward profiles
        exist when there is none by that name (strategies call this up front to fail
        before spending anything)."""
        if self._reward_models is None:
            raise ValueError(
                f"reward model {name!r} was asked for, but this run has no reward models "
                "configured (the Context was built without a reward_models lookup)"
            )
        try:
            return self._reward_models(name)
        except KeyError:  # a plain mapping lookup: say what exists
            raise ValueError(f"unknown reward model {name!r}") from None

    def score(self, candidates: list[str], *, reward_model: str) -> Awaitable[list[float]]:
        """Outcome-reward scores of whole answers: one score in [0, 1] per candidate (see
        :mod:`ponder.llm.reward`), from the reward model profile ``reward_model``, for
        the problem's prompt. Journaled like :meth:`score_steps` and unbilled."""
        candidates = [str(c) for c in candidates]
        model = self.reward_model(reward_model)
        key = self._take_key()
        digest = _digest("reward", {"reward_model": reward_model, "candidates": candidates})
        record = self._replay(key, "reward", digest)
        if record is not None:
            return _ready([float(x) for x in record.result["scores"]])
        self._check_can_start()
        return self._spawn(self._run_score(key, digest, model, candidates))

    def score_steps(
        self, paths: list[list[str]], *, reward_model: str
    ) -> Awaitable[list[list[float]]]:
        """Process-reward scores of partial solutions: per path, one score in [0, 1] per
        step (see :mod:`ponder.llm.reward`), from the reward model profile
        ``reward_model``, for the problem's prompt. Journaled like :meth:`verify` (its
        key is taken now; a resumed run gets the journaled scores back) and unbilled."""
        paths = [[str(step) for step in path] for path in paths]
        model = self.reward_model(reward_model)
        key = self._take_key()
        digest = _digest("reward", {"reward_model": reward_model, "paths": paths})
        record = self._replay(key, "reward", digest)
        if record is not None:
            return _ready([[float(x) for x in row] for row in record.result["scores"]])
        self._check_can_start()
        return self._spawn(self._run_reward(key, digest, model, paths))

    def prompt_text(self) -> str:
        """The problem as plain text, as reward models see it: the one message's text, or
        ``role: text`` blocks separated by blank lines when there are several."""
        messages = self.messages()
        if len(messages) == 1:
            return messages[0]["content"]
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def propose(self, answer: str | None, verdict: Verdict) -> bool:
        """Offer a candidate; it becomes the job's best-so-far if it ranks higher (passed
        first, then score). Returns whether it did."""
        if answer is None:
            return False
        cand = Candidate(answer, verdict)
        if self._best is not None and cand.rank() <= self._best.rank():
            return False
        self._best = cand
        self._journal.set_best(self.best_json() or {})
        received = self._received
        self.event(
            "best",
            {
                "answer": answer,
                "score": verdict.score,
                "verified": verdict.passed,
                # what the job had spent when it found this answer (the anytime curve)
                "tokens": received.tokens,
                "calls": received.calls,
                "cost_usd": round(received.cost_usd, 8),
            },
        )
        return True

    @property
    def best(self) -> Candidate | None:
        return self._best

    @property
    def has_verifier(self) -> bool:
        """Whether candidates can be checked (False under the ``none`` verifier)."""
        return self._verifier.name != "none"

    def budget_left(self) -> tuple[int | None, int | None, float | None]:
        """What is left of the budget (tokens, calls, cost; None where uncapped), counting
        only the results this strategy has received. Unlike ``ledger.headroom()`` it is
        the same on a resumed run as on the original one, so strategies may branch on it
        (spend lost to a crash is still enforced by the ledger's hard caps)."""
        lim = self.ledger.limits
        used = self._received
        return (
            None if lim.max_tokens is None else lim.max_tokens - used.tokens,
            None if lim.max_calls is None else lim.max_calls - used.calls,
            None if lim.max_cost_usd is None else lim.max_cost_usd - used.cost_usd,
        )

    def _account(self, result: dict[str, Any], price: PriceFn) -> None:
        usage = Usage(**result["usage"])
        self._received = self._received + Spend(
            usage.total_tokens, len(result["completions"]), price(usage)
        )

    def best_json(self) -> dict[str, Any] | None:
        if self._best is None:
            return None
        v = self._best.verdict
        return {"answer": self._best.answer, "score": v.score, "verified": v.passed}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Append a progress event (candidates, tree nodes, rounds) to the job's log."""
        self._event_count += 1
        if self._event_count <= self._journal.strategy_events:
            return  # written by an earlier run of this job
        self._journal.add_event(kind, data, strategy=True)

    # ---- what verifiers that call models use (with score and prompt_text) -------------

    def chat_model(self, name: str) -> tuple[Provider, PriceFn]:
        """The provider and prices of chat model profile ``name`` (looked up once per
        run); ValueError if none."""
        found = self._chat_models.get(name)
        if found is None:
            found = self._chat_models[name] = self._lookup_chat_model(name)
        return found

    def judge(self, request: JudgeRequest, parse: Callable[[str], Verdict]) -> Awaitable[Verdict]:
        """A verifier's judge call: ``request`` to its model, billed at that profile's
        prices, the reply's text read by ``parse`` (total: never raises) into the verdict,
        which is journaled with the call (under ``"judge"``)."""
        provider, price = self.chat_model(request.model)
        key = self._take_key()
        payload = {
            "messages": request.messages,
            "n": 1,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": None,
            "judge": request.model,
        }
        digest = _digest("sample", payload)
        record = self._replay(key, "sample", digest)
        if record is not None:
            with self._chat_span(key, "judge", provider, replayed=True):
                self._account(record.result, price)
            stored = (record.result.get("judge") or {}).get("verdict")
            if isinstance(stored, dict):
                return _ready(Verdict.from_json(stored))
            completions = _completions_from_json(record.result)
            return _ready(parse(completions[0].text if completions else ""))
        sample, reservation = self._issue(
            key,
            digest,
            request.messages,
            n=1,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=None,
            extra=None,
            price=price,
        )
        return self._spawn(
            self._run_judge(key, digest, sample, reservation, request.model, parse, provider, price)
        )

    # ---- runner side --------------------------------------------------------------------

    def seconds_used(self) -> float:
        return self._seconds_before + (self._clock() - self._started)

    def progress(self) -> dict[str, Any]:
        spent = self.ledger.spent
        best = self._best
        return {
            "tokens": spent.tokens,
            "calls": spent.calls,
            "cost_usd": round(spent.cost_usd, 8),
            "steps": self._next_key,
            "best_score": None if best is None else best.verdict.score,
            "verified": bool(best and best.verdict.passed),
        }

    async def drain(self, timeout: float | None) -> None:
        """Wait for calls still in flight so their results are journaled, not lost."""
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        cancelled = []
        for t in list(self._inflight):
            if t.done() and not t.cancelled():
                t.exception()  # mark retrieved: the strategy already saw or ignored it
            elif not t.done():
                t.cancel()
                cancelled.append(t)
        if cancelled:
            # let the abandoned calls journal their loss (their worst case, counted as
            # spent) before the slice writes its end
            await asyncio.wait(cancelled, timeout=ABANDON_WRITE_SECONDS)
            for t in cancelled:
                if t.done() and not t.cancelled():
                    t.exception()

    # ---- internals ----------------------------------------------------------------------

    def _take_key(self) -> int:
        self._next_key += 1
        return self._next_key

    def _replay(self, key: int, kind: str, digest: str) -> StepRecord | None:
        record = self._journal.steps.get(key)
        if record is None:
            return None
        if record.kind != kind or record.digest != digest:
            raise NonDeterminism(
                f"on resume, call #{key} was a {kind} call that differs from the journaled "
                f"{record.kind} call: the strategy is not deterministic given its journal"
            )
        self.replayed_calls += 1
        metrics.call_replayed(kind)
        return record

    def _check_can_start(self) -> None:
        if self._journal.lease_lost:
            raise LeaseLost("the job's lease was taken over by another worker")
        if self._journal.cancel_requested:
            raise Cancelled("the job was cancelled")
        limit = self.ledger.limits.max_seconds
        if limit is not None and self.seconds_used() >= limit:
            raise DeadlineExceeded()
        if self._stopping is not None and self._stopping():
            raise WorkerStopping("the worker is shutting down")
        # Every slice makes at least one new call, so a job always progresses.
        if (
            self._slice_seconds is not None
            and self._issued > 0
            and self._clock() - self._started >= self._slice_seconds
        ):
            raise SliceExpired()

    def _lookup_chat_model(self, name: str) -> tuple[Provider, PriceFn]:
        own = name == self._provider.name
        if self._providers is None:
            if own:
                return self._provider, self._price
            raise ValueError(
                f"the verifier's model {name!r} was asked for, but this run has no providers "
                "configured besides the job's own model (the Context was built without a "
                "providers lookup)"
            )
        try:
            provider = self._providers(name)
        except KeyError:
            raise ValueError(
                f"unknown judge model {name!r}: no model profile has that name"
            ) from None
        if self._prices is not None:
            price = self._prices(name)
        elif own:
            price = self._price
        else:
            raise ValueError(f"no prices for the verifier's model {name!r}")
        return provider, price

    def _issue(
        self,
        key: int,
        digest: str,
        messages: list[Message],
        *,
        n: int,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None,
        extra: dict[str, Any] | None,
        price: PriceFn,
    ) -> tuple[SampleRequest, Reservation]:
        """Start a billed call: reserve its worst case in the ledger (the call's task
        journals the reservation before it calls the model). Raises BudgetExhausted
        (nothing reserved) when the budget covers no sample."""
        self._check_can_start()
        prompt_tokens = estimate_prompt_tokens(messages)
        n_eff, max_eff = self._fit(n, prompt_tokens, max_tokens, price)
        per_sample_usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=max_eff)
        worst = Spend(
            tokens=(prompt_tokens + max_eff) * n_eff,
            calls=n_eff,
            cost_usd=price(per_sample_usage) * n_eff,
        )
        with metrics.budget_refusals():
            reservation = self.ledger.reserve(worst)
        self._issued += 1
        request = SampleRequest(
            messages=messages,
            n=n_eff,
            max_tokens=max_eff,
            temperature=temperature,
            seed=derive_seed(self._seed, key),
            stop=stop,
            extra=dict(extra or {}),
        )
        return request, reservation

    def _fit(self, n: int, prompt_tokens: int, max_tokens: int, price: PriceFn) -> tuple[int, int]:
        per = Spend(
            tokens=prompt_tokens + max_tokens,
            calls=1,
            cost_usd=price(Usage(prompt_tokens=prompt_tokens, completion_tokens=max_tokens)),
        )
        n_eff = self.ledger.affordable(per, n)
        if n_eff > 0:
            return n_eff, max_tokens
        # One shorter sample may still fit: budget forcing at the cap.
        tokens_left, _, _ = self.ledger.headroom()
        if tokens_left is not None:
            shorter = tokens_left - prompt_tokens
            if MIN_SAMPLE_TOKENS <= shorter < max_tokens:
                return 1, shorter
        return 1, max_tokens  # the reservation will raise BudgetExhausted with the reason

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    def _call_timeout(self) -> float | None:
        limit = self.ledger.limits.max_seconds
        if limit is None:
            return None
        return max(0.0, limit - self.seconds_used())

    async def _run_sample(
        self, key: int, digest: str, request: SampleRequest, reservation: Reservation
    ) -> list[Completion]:
        with self._chat_span(key, "sample", self._provider, request) as span:
            await self._begin(key, digest, reservation)
            result = await self._call_model(key, request, reservation, self._provider, self._price)
            await self._complete(key, digest, reservation, result, self._price, {}, span)
        return list(result.completions)

    async def _begin(self, key: int, digest: str, reservation: Reservation) -> None:
        """Journal a billed call's reservation: durable before the model is called, so a
        crash during the call counts its worst case as spent."""
        try:
            with metrics.budget_refusals():
                await self._journal.begin_paid_step(key, "sample", digest, reservation.spend)
        except BaseException:
            self.ledger.release(reservation)
            raise

    async def _run_judge(
        self,
        key: int,
        digest: str,
        request: SampleRequest,
        reservation: Reservation,
        model: str,
        parse: Callable[[str], Verdict],
        provider: Provider,
        price: PriceFn,
    ) -> Verdict:
        with self._chat_span(key, "judge", provider, request) as span:
            await self._begin(key, digest, reservation)
            result = await self._call_model(key, request, reservation, provider, price)
            verdict = parse(result.completions[0].text if result.completions else "")
            extra = {"judge": {"model": model, "verdict": verdict.to_json()}}
            await self._complete(key, digest, reservation, result, price, extra, span)
        return verdict

    async def _complete(
        self,
        key: int,
        digest: str,
        reservation: Reservation,
        result: SampleResult,
        price: PriceFn,
        extra: dict[str, Any],
        span: telemetry.SpanLike = telemetry.NO_SPAN,
    ) -> None:
        """Settle a billed call's reservation at its real usage and journal its result
        (durably, before the strategy sees it); ``span`` (the call's) gets its usage,
        cost and what remains of the budget."""
        actual = Spend(
            tokens=result.usage.total_tokens,
            calls=len(result.completions),
            cost_usd=price(result.usage),
        )
        self.ledger.settle(reservation, actual)
        self.new_calls += 1
        if span.is_recording():
            _record_call(span, result, actual, self.ledger)
        self._journal.set_progress(self.progress())
        data = {**_sample_result_to_json(result), **extra}
        await self._journal.complete_paid_step(key, "sample", digest, data, actual)
        self._account(data, price)

    async def _call_model(
        self,
        key: int,
        request: SampleRequest,
        reservation: Reservation,
        provider: Provider,
        price: PriceFn,
    ) -> SampleResult:
        try:
            timeout = self._call_timeout()
            with metrics.model_call(provider.name):
                if timeout is None:
                    result = await provider.sample(request)
                else:
                    result = await asyncio.wait_for(provider.sample(request), timeout)
        except TimeoutError:
            await self._lose(key, reservation)
            raise DeadlineExceeded() from None
        except ProviderError:
            # The server refused or failed the request: nothing was billed.
            self.ledger.release(reservation)
            await self._journal.abandon_step(key, None)
            raise
        except BaseException:
            await self._lose(key, reservation)
            raise
        usage = result.usage
        metrics.model_usage(
            provider.name,
            usage.prompt_tokens,
            usage.completion_tokens,
            len(result.completions),
            price(usage),
        )
        return result

    async def _lose(self, key: int, reservation: Reservation) -> None:
        """A billed call ended without a usable result; count its worst case as spent."""
        self.ledger.forfeit(reservation)
        # If this write fails, the next worker counts the pending row as spent anyway.
        with contextlib.suppress(Exception):
            await self._journal.abandon_step(key, reservation.spend)
            metrics.LOST_CALLS.inc()

    async def _run_reward(
        self, key: int, digest: str, model: RewardModel, paths: list[list[str]]
    ) -> list[list[float]]:
        call = model.score_steps(self.prompt_text(), paths)
        timeout = self._call_timeout()
        try:
            with (
                _reward_span(key, model, "score_steps", len(paths)),
                metrics.model_call(model.name),
            ):
                scores = await (call if timeout is None else asyncio.wait_for(call, timeout))
        except TimeoutError:
            raise DeadlineExceeded() from None
        if len(scores) != len(paths) or any(
            len(row) != len(path) for row, path in zip(scores, paths, strict=True)
        ):
            raise ProviderError(
                f"reward model {model.name!r} returned scores that do not match the paths sent "
                f"({len(scores)} rows for {len(paths)} paths)"
            )
        rows = [[float(x) for x in row] for row in scores]
        self._journal.record_free_step(key, "reward", digest, {"scores": rows})
        return rows

    async def _run_score(
        self, key: int, digest: str, model: RewardModel, candidates: list[str]
    ) -> list[float]:
        call = model.score(self.prompt_text(), candidates)
        timeout = self._call_timeout()
        try:
            with _reward_span(key, model, "score", len(candidates)), metrics.model_call(model.name):
                scores = await (call if timeout is None else asyncio.wait_for(call, timeout))
        except TimeoutError:
            raise DeadlineExceeded() from None
        if len(scores) != len(candidates):
            raise ProviderError(
                f"reward model {model.name!r} returned {len(scores)} score(s) for "
                f"{len(candidates)} candidate(s)"
            )
        values = [float(x) for x in scores]
        if not all(0.0 <= x <= 1.0 for x in values):  # also rejects NaN
            raise ProviderError(
                f"reward model {model.name!r} returned a score outside [0, 1]: {values}"
            )
        self._journal.record_free_step(key, "reward", digest, {"scores": values})
        return values

    async def _run_verify(self, key: int, digest: str, answer: str) -> Verdict:
        with _verify_span(key, self._verifier) as span:
            verdict = await self._verifier.verify(self.problem, answer)
            if span.is_recording():
                span.set_attribute("ponder.verdict.passed", verdict.passed)
                span.set_attribute("ponder.verdict.score", verdict.score)
        self._journal.record_free_step(key, "verify", digest, verdict.to_json())
        return verdict

    def _chat_span(
        self,
        key: int,
        call: str,
        provider: Provider,
        request: SampleRequest | None = None,
        *,
        replayed: bool = False,
    ) -> AbstractContextManager[telemetry.SpanLike]:
        """The span of a billed model call (``call``: sample or judge), with the GenAI
        attributes of the request; a replayed call's span says so and costs nothing."""
        if not telemetry.enabled():
            return telemetry.NOOP
        profile = getattr(provider, "profile", None)
        system = str(getattr(profile, "provider", provider.name))
        model = str(getattr(profile, "model", provider.name))
        attributes: dict[str, telemetry.AttrValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "ponder.model": provider.name,
            "ponder.call.key": key,
            "ponder.call.kind": call,
            "ponder.replayed": replayed,
        }
        if request is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
            attributes["gen_ai.request.temperature"] = request.temperature
            attributes["gen_ai.request.choice.count"] = request.n
            if request.seed is not None:
                attributes["gen_ai.request.seed"] = request.seed
        if replayed:
            attributes["ponder.cost_usd"] = 0.0
        return telemetry.span(f"chat {model}", attributes, kind="client")


def _record_call(
    span: telemetry.SpanLike, result: SampleResult, cost: Spend, ledger: Ledger
) -> None:
    """A finished billed call's usage and cost, and the job's budget after it."""
    span.set_attribute("gen_ai.response.model", result.model)
    span.set_attribute("gen_ai.usage.input_tokens", result.usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", result.usage.completion_tokens)
    if result.usage.reasoning_tokens:
        span.set_attribute("ponder.usage.reasoning_tokens", result.usage.reasoning_tokens)
    span.set_attribute(
        "gen_ai.response.finish_reasons", [c.finish_reason for c in result.completions]
    )
    span.set_attribute("ponder.cost_usd", cost.cost_usd)
    limits = ledger.limits.model_dump()
    for name, value in telemetry.budget_limits(limits).items():
        span.set_attribute(name, value)
    tokens, calls, cost_usd = ledger.headroom()
    for name, left in (("tokens", tokens), ("calls", calls), ("cost_usd", cost_usd)):
        if left is not None:
            span.set_attribute(f"ponder.budget.{name}_remaining", left)


def _reward_span(
    key: int, model: RewardModel, call: str, items: int
) -> AbstractContextManager[telemetry.SpanLike]:
    if not telemetry.enabled():
        return telemetry.NOOP
    return telemetry.span(
        "ponder.reward",
        {
            "ponder.reward_model": model.name,
            "ponder.call.key": key,
            "ponder.call.kind": call,
            "ponder.reward.items": items,
        },
        kind="client",
    )


def _verify_span(key: int, verifier: Verifier) -> AbstractContextManager[telemetry.SpanLike]:
    if not telemetry.enabled():
        return telemetry.NOOP
    return telemetry.span(
        "ponder.verify",
        {"ponder.verifier": verifier.name, "ponder.call.key": key},
    )


async def _ready_coro(value: Any) -> Any:
    return value


def _ready(value: Any) -> Awaitable[Any]:
    return _ready_coro(value)


__all__ = [
    "BudgetExhausted",
    "Cancelled",
    "Candidate",
    "Context",
    "DeadlineExceeded",
    "Journal",
    "LeaseLost",
    "NonDeterminism",
    "SliceExpired",
    "StepRecord",
    "WorkerStopping",
]
