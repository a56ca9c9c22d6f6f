"""The simulated model: an offline stand-in for an LLM whose skill scales with the
tokens it may spend.

It answers the prompts strategies send real models, reports token usage, and can
pretend to be slow (time to first token + tokens per second). Its skill on the Game
of 24 comes from an honest, *bounded* search — never from an answer key: it writes a
readable trace of every step it tries, and the trace has to fit in ``max_tokens``, so a
larger allowance buys a larger search and more solved puzzles. That is what makes
test-time scaling measurable offline: best-of-N, refinement and longer thinking all
buy accuracy the same way they do with a real model.

Everything is a pure function of (messages, max_tokens, temperature, seed, sample
index): each sample draws from its own ``random.Random`` seeded from those, never the
global generator and never the clock, so replayed jobs and tests see the same text.

Other prompt families plug in as :class:`~ponder.sim.skill.Skill` objects (see
:func:`~ponder.sim.skill.register_skill` and :mod:`ponder.sim.skills`), tried before the
Game of 24; prompts no skill recognizes get a short, deterministic generic reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from ponder.families.game24 import parse_prompt
from ponder.llm.base import (
    BadRequest,
    Completion,
    ContextTooLong,
    Message,
    SampleRequest,
    SampleResult,
    Usage,
)
from ponder.llm.limits import Limiter
from ponder.llm.profiles import SIM_MODEL_ID, ModelProfile
from ponder.llm.registry import register_provider
from ponder.once import Once
from ponder.sim.skill import Draw, registered_skills
from ponder.sim.tokens import count_tokens, prompt_tokens, truncate_to_tokens
from ponder.verifiers.game24 import DivisionByZero, ExpressionError, evaluate, parse_expression

# Like a real server, prompt + max_tokens must fit the context; this also bounds how much
# search (CPU) one sample can ask for.
CONTEXT_WINDOW_TOKENS = 131_072
TARGET = Fraction(24)
# Above this much requested work (n * max_tokens) the search runs in a worker thread so
# a big request cannot stall the event loop other jobs share (search costs roughly
# 0.3-1.5 ms of CPU per 100 tokens of trace).
_THREAD_THRESHOLD_TOKENS = 16_000


# --- Game of 24: bounded randomized search --------------------------------------------
#
# The search is the one people use: combine two numbers (one trace line per move) until
# three are left, then work backwards — for each number kept for last, list what the
# other two can make and see whether any of it finishes to 24 (one trace line per kept
# number). Moves are tried in the order a quick heuristic likes, jittered by
# temperature; the trace must fit the token allowance, so a bigger allowance searches
# more of the tree. Nothing here knows any puzzle's answer.

# Calibration (single-sample success, temperature 0.8, 100 samples on each of the ten
# puzzles in tests/unit/test_sim_model.py, half of which need fractions):
#   max_tokens   128   256   512  1024  2048
#   success     0.25  0.38  0.65  0.82  0.96
# Puzzles with many solutions (1 2 3 4) are solved at 128-256 tokens; single-solution,
# fraction-only ones (3 3 8 8, 2 3 5 12) need 1-2k. An exhaustive 4-number search costs
# about 3k tokens, so unsolvable puzzles end with "Tried everything" past that.
_NOISE_SCALE = 1.0  # std-dev of the heuristic jitter at temperature 1
_SLIP_HIGH, _SLIP_LOW = 0.10, 0.02  # chance of miscopying the final expression


@dataclass(frozen=True)
class _Item:
    """A number on the table and how it was made."""

    value: Fraction
    expr: str
    atom: bool = False

    def wrapped(self) -> str:
        return self.expr if self.atom else f"({self.expr})"


def _show(value: Fraction) -> str:
    text = str(value)  # "22" or "23/2"; six-number puzzles can make huge fractions
    return text if len(text) <= 16 else f"~{float(value):.6g}"


def _show_operand(value: Fraction) -> str:
    return str(value) if value.denominator == 1 else f"({value})"


@dataclass(frozen=True)
class _Combo:
    """``x op y``, already worked out."""

    x: _Item
    y: _Item
    op: str
    result: _Item

    def text(self) -> str:
        x, y = _show_operand(self.x.value), _show_operand(self.y.value)
        return f"{x} {self.op} {y} = {_show(self.result.value)}"


# The simulator answers many identical puzzles (benchmarks, batches): the pure parts of
# its search are memoized, so a simulated call costs little next to the service's work.
@lru_cache(maxsize=8192)
def _combinations(a: _Item, b: _Item) -> tuple[_Combo, ...]:
    """Every distinct value two numbers make with + - * / (division by zero skipped)."""
    if b.value > a.value:  # larger first reads naturally: "13 - 9", "8 / 2"
        a, b = b, a
    ordered = [(a, b, "+"), (a, b, "*"), (a, b, "-"), (b, a, "-"), (a, b, "/"), (b, a, "/")]
    out: list[_Combo] = []
    seen: set[Fraction] = set()
    for x, y, op in ordered:
        if op == "/" and y.value == 0:
            continue
        if op == "+":
            value = x.value + y.value
        elif op == "-":
            value = x.value - y.value
        elif op == "*":
            value = x.value * y.value
        else:
            value = x.value / y.value
        if value not in seen:
            seen.add(value)
            out.append(_Combo(x, y, op, _Item(value, f"{x.wrapped()} {op} {y.wrapped()}")))
    return tuple(out)


@dataclass(frozen=True)
class _Move:
    """Combine two numbers of a state; ``left`` is the state after the move."""

    combo: _Combo
    left: tuple[_Item, ...]

    def line(self) -> str:
        rest = " ".join(_show(it.value) for it in self.left)
        return f"{self.combo.text()} (left: {rest})"


@lru_cache(maxsize=8192)
def _moves(state: tuple[_Item, ...]) -> tuple[_Move, ...]:
    """Every way to combine two of ``state``'s numbers, one per distinct outcome."""
    moves: list[_Move] = []
    seen: set[tuple[Fraction, ...]] = set()
    for i in range(len(state)):
        for j in range(i + 1, len(state)):
            rest = state[:i] + state[i + 1 : j] + state[j + 1 :]
            for combo in _combinations(state[i], state[j]):
                left = (*rest, combo.result)
                key = tuple(sorted(it.value for it in left))
                if key not in seen:
                    seen.add(key)
                    moves.append(_Move(combo, left))
    return tuple(moves)


def _heuristic(move: _Move) -> float:
    """How unpromising a move looks at a glance (lower is tried first): people prefer
    whole positive numbers of moderate size, especially ones that divide 24."""
    v = move.combo.result.value
    cost = 0.0
    if v <= 0:
        cost += 2.0
    if v.denominator != 1:
        cost += 1.5
    elif v > 0 and 24 % int(v) == 0:
        cost -= 0.5
    if v > 48:
        cost += 0.5
    return cost


def _state_key(state: tuple[_Item, ...]) -> tuple[Fraction, ...]:
    return tuple(sorted(it.value for it in state))


def _needed(last: Fraction) -> list[Fraction]:
    """The values that finish to 24 with ``last`` (working backwards from the target)."""
    values = [TARGET - last, TARGET + last, last - TARGET, TARGET * last]
    if last != 0:
        values += [TARGET / last, last / TARGET]
    return list(dict.fromkeys(values))


class _OutOfTokens(Exception):
    pass


class _Trace:
    """The lines written so far, under a hard token allowance."""

    def __init__(self, allowance: int) -> None:
        self.lines: list[str] = []
        self.allowance = allowance
        self.used = 0

    def write(self, line: str) -> None:
        cost = count_tokens(line + "\n")
        if self.used + cost > self.allowance:
            raise _OutOfTokens
        self.lines.append(line)
        self.used += cost


@dataclass
class _Search:
    rng: random.Random
    noise: float
    trace: _Trace
    solution: _Item | None = None
    closest: _Item | None = None  # nearest miss among the finishes actually written
    visited: set[tuple[Fraction, ...]] = field(default_factory=set)
    # A continued search (see :func:`continue_game24`) does not even write the moves into
    # positions an earlier turn already ruled out; a fresh one notices only on arrival.
    skip_visited: bool = False

    def jitter(self) -> float:
        return self.noise * self.rng.gauss(0.0, 1.0) if self.noise > 0 else 0.0

    def run(self, numbers: list[int]) -> bool:
        """Search until solved, out of tokens, or out of ideas; True if it ran out of
        tokens (rather than finishing or exhausting the tree)."""
        state = tuple(_Item(Fraction(n), str(n), atom=True) for n in numbers)
        try:
            self.dfs(state)
        except _OutOfTokens:
            return True
        return False

    def dfs(self, state: tuple[_Item, ...]) -> bool:
        """True once solved; gives up silently on a state it has already explored."""
        key = _state_key(state)
        if key in self.visited:
            return False
        self.visited.add(key)
        if len(state) <= 3:
            return self.work_backwards(state)
        ranked = sorted((_heuristic(m) + self.jitter(), k, m) for k, m in enumerate(_moves(state)))
        for _, _, move in ranked:
            if self.skip_visited and _state_key(move.left) in self.visited:
                continue
            self.trace.write(move.line())
            if self.dfs(move.left):
                return True
        return False

    def work_backwards(self, state: tuple[_Item, ...]) -> bool:
        """Three (or fewer) numbers left: one line per choice of the number kept for
        last, listing what the other two make and whether any of it finishes to 24."""
        if len(state) < 3:  # a puzzle posed with fewer than three numbers
            finals = [c.result for c in _combinations(*state)] if len(state) == 2 else [*state]
            shown = " ".join(_show(f.value) for f in finals)
            return self.conclude(f"they make {shown}", finals)
        order = sorted((self.jitter(), k) for k in range(3))
        seen: set[Fraction] = set()
        for _, k in order:
            last = state[k]
            if last.value in seen:
                continue
            seen.add(last.value)
            a, b = (state[i] for i in range(3) if i != k)
            made = [c.result for c in _combinations(a, b)]
            finals = [c.result for m in made for c in _combinations(m, last)]
            needed = " ".join(_show(v) for v in _needed(last.value))
            shown = " ".join(_show(m.value) for m in made)
            head = f"{_show(last.value)} last, need one of {needed}; others make {shown}"
            if self.conclude(head, finals):
                return True
        return False

    def conclude(self, head: str, finals: list[_Item]) -> bool:
        """Write the check's line; only a check that made it into the trace counts."""
        hit = next((f for f in finals if f.value == TARGET), None)
        self.trace.write(f"{head}; {hit.expr} = 24, solved" if hit else f"{head}; no 24")
        for f in finals:
            if self.closest is None or abs(f.value - TARGET) < abs(self.closest.value - TARGET):
                self.closest = f
        if hit is not None:
            self.solution = hit
            return True
        return False


def _slip(expr: str, rng: random.Random) -> str:
    """Miscopy one number of ``expr`` (off by one), as a tired writer would. Changing
    one number always changes the multiset, so the slip never passes verification."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(expr):
        if expr[i].isdigit():
            j = i
            while j < len(expr) and expr[j].isdigit():
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    start, end = rng.choice(spans)
    n = int(expr[start:end])
    wrong = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
    return expr[:start] + str(wrong) + expr[end:]


def _slip_chance(max_tokens: int) -> float:
    # Falls from 10% at 128 tokens to 2% at 2048+ (log-linear): a model given room to
    # think double-checks its final line more often.
    t = min(max(math.log2(max(max_tokens, 1) / 128) / 4, 0.0), 1.0)
    return _SLIP_HIGH + (_SLIP_LOW - _SLIP_HIGH) * t


def _fallback_expression(numbers: list[int]) -> str:
    return " + ".join(str(n) for n in numbers)


def _closing_reserve(header: str, numbers: list[int]) -> int:
    """Room kept for the header and the two closing lines, whatever expression they hold."""
    expr_room = sum(len(str(n)) + 6 for n in numbers)
    return count_tokens(header) + 2 * count_tokens("x" * expr_room) + 16


def solve_game24(numbers: list[int], draw: Draw) -> str:
    """A completion for one Game of 24 puzzle: trace, then ``Answer: <expression>``."""
    header = f"Numbers: {' '.join(map(str, numbers))}. Target: 24."
    trace = _Trace(max(draw.max_tokens - _closing_reserve(header, numbers), 0))
    search = _Search(draw.rng, draw.temperature * _NOISE_SCALE, trace)
    ran_out = search.run(numbers)

    if search.solution is not None:
        expr = search.solution.expr
        closing = f"Found it: {expr} = 24"
    elif search.closest is not None:
        expr = search.closest.expr
        why = "Out of time" if ran_out else "Tried everything"
        closing = f"{why}; closest: {expr} = {_show(search.closest.value)}"
    else:
        expr = _fallback_expression(numbers)
        closing = "Out of time; guessing."
    if draw.rng.random() < _slip_chance(draw.max_tokens):
        expr = _slip(expr, draw.rng)
    return "\n".join([header, *trace.lines, closing, f"Answer: {expr}"])


# --- Game of 24 across turns: budget forcing ("Wait") and the final-answer request --------
#
# A thinking strategy may stop the model's turn, append "Wait" (asking it to keep
# thinking) and later ask "Final answer:". The sim then reads its own earlier turns back:
# every position a finished branch of an earlier trace explored is ruled out, so the
# continued search covers new ground and the search summed over the turns grows with the
# tokens summed over them, as one long trace would. The final answer reuses the best
# expression the traces found. Single-turn prompts never take these paths.

CONTINUE_CUE = "wait"  # a user turn starting with this asks to keep thinking
FINAL_ANSWER_CUE = "final answer"  # ... and with this, for the final answer

_MOVE_LINE_RE = re.compile(r"= \S+ \(left: ([^)]*)\)$")
_FOUND_RE = re.compile(r"^Found it: (.+) = 24$|; ([^;]+) = 24, solved$")
_CLOSEST_RE = re.compile(r"closest: (.+) = \S+$")


def _parse_value(text: str) -> Fraction | None:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None  # "~1.2e+07": shown approximately, cannot be matched exactly


def _value_of(expr: str) -> Fraction | None:
    try:
        return evaluate(parse_expression(expr))
    except (ExpressionError, DivisionByZero):
        return None


@dataclass
class _Recall:
    """What the sim's earlier turns of a conversation established."""

    ruled_out: set[tuple[Fraction, ...]] = field(default_factory=set)
    solution: str | None = None
    closest: tuple[Fraction, str, Fraction] | None = None  # (distance to 24, expr, value)
    tokens: int = 0


def _recall(numbers: list[int], turns: list[str]) -> _Recall:
    """Read earlier traces: positions whose branch was finished, and expressions found.

    In a trace the move lines of the branch in progress when the turn ended (the last
    line at each depth) were not finished, so they stay open; every other position a move
    line reached was searched to the end without reaching 24."""
    out = _Recall()
    for text in turns:
        out.tokens += count_tokens(text)
        reached: list[tuple[Fraction, ...]] = []
        path: list[tuple[Fraction, ...] | None] = []  # the open branch, one per depth
        for line in text.splitlines():
            found = _FOUND_RE.search(line)
            if found is not None and out.solution is None:
                expr = found[1] or found[2]
                if _value_of(expr) == TARGET:  # only what the trace really worked out
                    out.solution = expr
            closest = _CLOSEST_RE.search(line)
            if closest is not None:
                value = _value_of(closest[1])
                if value is not None:
                    cand = (abs(value - TARGET), closest[1], value)
                    if out.closest is None or cand[0] < out.closest[0]:
                        out.closest = cand
            move = _MOVE_LINE_RE.search(line)
            if move is None:
                continue
            shown = move[1].split()
            depth = len(numbers) - len(shown)
            if depth < 1:
                continue
            values = [_parse_value(tok) for tok in shown]
            key = None if None in values else tuple(sorted(v for v in values if v is not None))
            del path[depth - 1 :]
            path.extend([None] * (depth - 1 - len(path)))
            path.append(key)
            if key is not None:
                reached.append(key)
        open_branch = {k for k in path if k is not None}
        out.ruled_out.update(k for k in reached if k not in open_branch)
    return out


def _slipped(expr: str, thought: int, rng: random.Random) -> str:
    return _slip(expr, rng) if rng.random() < _slip_chance(thought) else expr


def continue_game24(numbers: list[int], turns: list[str], draw: Draw) -> str:
    """The next turn after "Wait": pick the search up where the earlier turns left it."""
    memory = _recall(numbers, turns)
    thought = memory.tokens + draw.max_tokens
    if memory.solution is not None:
        expr = memory.solution
        lines = [f"Checking what I found: {expr} = 24, every number used once.", "Confirmed."]
        return "\n".join([*lines, f"Answer: {_slipped(expr, thought, draw.rng)}"])
    header = f"Continuing: {len(memory.ruled_out)} positions already ruled out."
    trace = _Trace(max(draw.max_tokens - _closing_reserve(header, numbers), 0))
    search = _Search(
        draw.rng,
        draw.temperature * _NOISE_SCALE,
        trace,
        visited=set(memory.ruled_out),
        skip_visited=True,
    )
    ran_out = search.run(numbers)
    best = memory.closest
    if search.closest is not None:
        mine = (abs(search.closest.value - TARGET), search.closest.expr, search.closest.value)
        if best is None or mine[0] < best[0]:
            best = mine
    if search.solution is not None:
        expr = search.solution.expr
        closing = f"Found it: {expr} = 24"
    elif best is not None:
        expr = best[1]
        why = "Out of time" if ran_out else "Tried everything"
        closing = f"{why}; closest: {expr} = {_show(best[2])}"
    else:
        expr = _fallback_expression(numbers)
        closing = "Out of time; guessing."
    answer = f"Answer: {_slipped(expr, thought, draw.rng)}"
    return "\n".join([header, *trace.lines, closing, answer])


def final_answer_game24(numbers: list[int], turns: list[str], draw: Draw) -> str:
    """The reply to "Final answer:": the best expression the earlier turns found."""
    memory = _recall(numbers, turns)
    if memory.solution is not None:
        expr = memory.solution
    elif memory.closest is not None:
        expr = memory.closest[1]
    else:
        return solve_game24(numbers, draw)  # nothing usable was thought: answer afresh
    return f"Answer: {_slipped(expr, memory.tokens, draw.rng)}"


def _followup(messages: list[Message]) -> tuple[str, list[int], list[str]] | None:
    """("continue" | "final", puzzle, earlier assistant turns) for a budget-forcing
    follow-up to a Game of 24 puzzle, else None."""
    if len(messages) < 3 or messages[-1]["role"] != "user":
        return None
    cue = messages[-1]["content"].lstrip().lower()
    if cue.startswith(CONTINUE_CUE):
        kind = "continue"
    elif cue.startswith(FINAL_ANSWER_CUE):
        kind = "final"
    else:
        return None
    turns: list[str] = []
    for message in reversed(messages[:-1]):
        if message["role"] == "assistant":
            turns.append(message["content"])
            continue
        puzzle = parse_prompt(message["content"])
        if puzzle is not None:
            return (kind, puzzle, turns[::-1]) if turns else None
    return None


class Game24Skill:
    name = "game24"

    def respond(self, messages: list[Message], draw: Draw) -> str | None:
        followup = _followup(messages)
        if followup is not None:
            kind, puzzle, turns = followup
            if kind == "continue":
                return continue_game24(puzzle, turns, draw)
            return final_answer_game24(puzzle, turns, draw)
        # The newest puzzle posed by the user (or system): in a refinement conversation
        # the last user turn may be feedback, with the puzzle further up.
        for message in reversed(messages):
            if message["role"] != "assistant":
                numbers = parse_prompt(message["content"])
                if numbers is not None:
                    return solve_game24(numbers, draw)
        return None


def generic_reply(messages: list[Message], draw: Draw) -> str:
    """For prompts no skill knows: a short, deterministic, probably-wrong reply."""
    guess = draw.rng.randint(0, 100)
    return f"Let me think about this.\nI am not sure; my best guess follows.\nAnswer: {guess}"


# tried after every registered skill (see :mod:`ponder.sim.skill`)
_GAME24 = Game24Skill()


def _load_skills() -> None:
    """Import every module of :mod:`ponder.sim.skills` (each registers itself)."""
    import importlib
    import pkgutil

    from ponder.sim import skills

    for info in pkgutil.iter_modules(skills.__path__):
        importlib.import_module(f"{skills.__name__}.{info.name}")


_skills_once = Once(_load_skills)


def respond(messages: list[Message], draw: Draw) -> str:
    _skills_once()
    for skill in [*registered_skills(), _GAME24]:
        text = skill.respond(messages, draw)
        if text is not None:
            return text
    return generic_reply(messages, draw)


# --- the provider ----------------------------------------------------------------------


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def sample_rngs(request: SampleRequest) -> list[random.Random]:
    """The private dice of each of the request's ``n`` samples. With no seed, the seed
    comes from the prompt itself; at temperature 0 every sample of a prompt is the same
    greedy answer, whatever the seed."""
    prompt = _digest("\x1e".join(f"{m['role']}\x1f{m['content']}" for m in request.messages))
    if request.temperature <= 0:
        greedy = _digest(f"greedy|{request.max_tokens}|{prompt.hex()}")
        return [random.Random(greedy) for _ in range(request.n)]
    seed = request.seed if request.seed is not None else int.from_bytes(prompt[:8], "big")
    key = f"{seed}|{request.max_tokens}|{request.temperature!r}|{prompt.hex()}"
    return [random.Random(_digest(f"{key}|{index}")) for index in range(request.n)]


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    """Like a real server: end the text before the first stop sequence."""
    cut = len(text)
    for marker in stop or []:
        at = text.find(marker) if marker else -1
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def generate(request: SampleRequest) -> list[Completion]:
    """The pure core of :meth:`SimProvider.sample`: the ``n`` completions, no waiting."""
    completions = []
    temperature = max(request.temperature, 0.0)
    for rng in sample_rngs(request):
        draw = Draw(rng, request.max_tokens, temperature)
        text = _cut_at_stop(respond(request.messages, draw), request.stop)
        finish = "stop"
        if count_tokens(text) > request.max_tokens:
            text, finish = truncate_to_tokens(text, request.max_tokens), "length"
        completions.append(Completion(text=text, finish_reason=finish))
    return completions


class SimProvider:
    """The simulated model as a :class:`~ponder.llm.base.Provider`."""

    def __init__(
        self,
        name: str = "sim",
        *,
        ttft_ms: float = 0.0,
        tokens_per_s: float = 0.0,
        supports_n: bool = True,
    ) -> None:
        self.name = name
        self.ttft_ms = ttft_ms
        self.tokens_per_s = tokens_per_s
        self.supports_n = supports_n

    async def sample(self, request: SampleRequest) -> SampleResult:
        if request.n < 1:
            raise BadRequest("n must be at least 1", status_code=400)
        if request.n > 1 and not self.supports_n:
            raise BadRequest("this model does not support n > 1", status_code=400)
        if request.max_tokens < 1:
            raise BadRequest("max_tokens must be at least 1", status_code=400)
        used = prompt_tokens(request.messages)
        if used + request.max_tokens > CONTEXT_WINDOW_TOKENS:
            raise ContextTooLong(
                f"prompt ({used} tokens) + max_tokens ({request.max_tokens}) exceeds the "
                f"{CONTEXT_WINDOW_TOKENS}-token context window",
                status_code=400,
            )
        if request.n * request.max_tokens > _THREAD_THRESHOLD_TOKENS:
            completions = await asyncio.to_thread(generate, request)
        else:
            completions = generate(request)
        lengths = [count_tokens(c.text) for c in completions]
        delay = self.ttft_ms / 1000 if self.ttft_ms > 0 else 0.0
        if self.tokens_per_s > 0:
            # Samples decode in parallel: the call lasts as long as the longest one.
            delay += max(lengths) / self.tokens_per_s
        if delay > 0:
            await asyncio.sleep(delay)
        usage = Usage(prompt_tokens=used, completion_tokens=sum(lengths))
        return SampleResult(completions=completions, usage=usage, model=self.name)

    async def aclose(self) -> None:
        return None


@register_provider(
    "sim",
    default_model=SIM_MODEL_ID,
    in_process="(the in-process simulator); to reach a simulator over HTTP use provider "
    "'openai' with its base_url",
    simulated_latency=True,
)
def build_sim_provider(profile: ModelProfile, *, limiter: Limiter | None = None) -> SimProvider:
    """The simulated model for a ``provider: sim`` profile (``limiter`` does not apply:
    nothing is sent over the network)."""
    return SimProvider(
        profile.name,
        ttft_ms=profile.ttft_ms,
        tokens_per_s=profile.tokens_per_s,
        supports_n=profile.supports_n,
    )
