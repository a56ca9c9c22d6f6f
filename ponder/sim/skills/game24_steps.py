"""The simulated model on Tree of Thoughts' Game of 24 step prompts.

Two prompt kinds (see :mod:`ponder.families.game24`): *propose* ("list possible next
steps from these numbers") and *evaluate* ("can these numbers still reach 24? sure /
likely / impossible"). Both answers come from an honest, bounded search whose size grows
with the sample's ``max_tokens`` — never from an answer key — and everything is drawn
from the sample's own ``Draw.rng``, so the same request always gets the same text.

Propose: the legal steps are ranked by a glance at the number each makes, jittered by
temperature. With room to think, the model first checks the top-ranked steps (one line
each, a small search of what they leave, the search larger with more tokens) and lists
the ones that reach 24 first and the dead ends last. Then it lists as many steps as its
allowance holds. A tired writer sometimes slips on the arithmetic of a line (less often
with more tokens); the task's parser drops such lines.

Evaluate: a depth-first search of the numbers left, one trace line per pair of numbers
it finishes, under the token allowance. A found 24 says "sure", an exhausted search
"impossible"; a search cut short guesses from a glance ("likely" or "impossible", so a
small search can misjudge a solvable state), and a slip chance that falls with
``max_tokens`` flips the verdict now and then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from ponder.families.game24 import (
    Step,
    format_number,
    format_numbers,
    legal_steps,
    parse_step_prompt,
)
from ponder.llm.base import Message
from ponder.sim.skill import Draw, register_skill
from ponder.sim.tokens import count_tokens

TARGET = Fraction(24)
_NOISE_SCALE = 1.0  # std-dev of the ranking jitter at temperature 1
_CHECK_SHARE = 0.5  # at most this much of a propose allowance goes to checking steps
_MIN_CHECK_TOKENS = 96  # below this a propose answer lists steps without checking
_CHECK_NODES_PER_TOKEN = 1 / 16  # search size of one check, per token of max_tokens
_VERDICT_RESERVE = 8  # tokens kept for the verdict line of an evaluate answer


def _falling(max_tokens: int, high: float, low: float, lo_tokens: int, hi_tokens: int) -> float:
    """``high`` at ``lo_tokens`` or fewer, ``low`` at ``hi_tokens`` or more, log-linear."""
    span = math.log2(hi_tokens / lo_tokens)
    t = min(max(math.log2(max(max_tokens, 1) / lo_tokens) / span, 0.0), 1.0)
    return high + (low - high) * t


def slip_chance(max_tokens: int) -> float:
    """Chance that one listed step has an arithmetic slip: 8% at 64 tokens, 1% at 1024."""
    return _falling(max_tokens, 0.08, 0.01, 64, 1024)


def flip_chance(max_tokens: int) -> float:
    """Chance that an evaluation states a different verdict than its search supports:
    25% at 32 tokens, 3% at 1024."""
    return _falling(max_tokens, 0.25, 0.03, 32, 1024)


def _glance(value: Fraction) -> float:
    """How good a number looks to make 24 with (higher is better)."""
    score = 0.0
    if value <= 0:
        score -= 2.0
    if value.denominator != 1:
        score -= 1.5
    elif value > 0 and 24 % int(value) == 0:
        score += 0.5
    if value > 48:
        score -= 0.5
    return score


class _OutOfTokens(Exception):
    pass


class _Trace:
    def __init__(self, allowance: int) -> None:
        self.lines: list[str] = []
        self.allowance = allowance
        self.used = 0

    def fits(self, line: str) -> bool:
        return self.used + count_tokens(line + "\n") <= self.allowance

    def write(self, line: str) -> None:
        if not self.fits(line):
            raise _OutOfTokens
        self.lines.append(line)
        self.used += count_tokens(line + "\n")


_EPS = 1e-9


def _glance_float(value: float) -> float:
    """:func:`_glance` for the search's float arithmetic."""
    score = 0.0
    if value <= 0:
        score -= 2.0
    if abs(value - round(value)) > _EPS:
        score -= 1.5
    elif value > 0 and 24 % round(value) == 0:
        score += 0.5
    if value > 48:
        score -= 0.5
    return score


def _show_float(value: float) -> str:
    return format_number(Fraction(value).limit_denominator(1000))


def _pairs(a: float, b: float) -> list[float]:
    out = [a + b, a * b, a - b, b - a]
    if b != 0:
        out.append(a / b)
    if a != 0:
        out.append(b / a)
    return out


@dataclass
class _Reach:
    """Bounded depth-first search for 24 from some numbers (floats: it is mental
    arithmetic, fast and good enough). Each pair of numbers it finishes costs one node
    (and, when ``trace`` is given, one written line)."""

    draw: Draw
    noise: float
    nodes: int
    trace: _Trace | None = None
    found: bool = False
    exhausted: bool = False

    def run(self, values: Sequence[Fraction]) -> None:
        seen: set[tuple[float, ...]] = set()
        try:
            self.found = self._dfs(tuple(sorted(float(v) for v in values)), seen)
            self.exhausted = not self.found
        except _OutOfTokens:
            self.exhausted = False

    def _dfs(self, state: tuple[float, ...], seen: set[tuple[float, ...]]) -> bool:
        key = tuple(round(v, 9) for v in state)
        if key in seen:
            return False
        seen.add(key)
        if len(state) == 1:
            return abs(state[0] - 24) < _EPS
        if len(state) == 2:
            if self.nodes <= 0:
                raise _OutOfTokens
            self.nodes -= 1
            a, b = state
            hit = any(abs(v - 24) < _EPS for v in _pairs(a, b))
            if self.trace is not None:
                shown = f"{_show_float(a)} {_show_float(b)}"
                self.trace.write(f"{shown}: {'makes 24' if hit else 'no 24'}")
            return hit
        children: list[tuple[float, int, tuple[float, ...]]] = []
        for i in range(len(state)):
            for j in range(i + 1, len(state)):
                rest = state[:i] + state[i + 1 : j] + state[j + 1 :]
                for v in _pairs(state[i], state[j]):
                    jitter = _jit(self.draw, self.noise)
                    children.append((-_glance_float(v) + jitter, len(children), (*rest, v)))
        children.sort()
        return any(self._dfs(tuple(sorted(c)), seen) for _, _, c in children)


def _slipped(step: Step, draw: Draw) -> str:
    """The step's line with its result off by one (the ``left`` list agrees with the
    wrong result, so only the arithmetic is wrong)."""
    wrong = step.result + (1 if draw.rng.random() < 0.5 else -1)
    rest = list(step.left)
    rest.remove(step.result)
    a, b = format_number(step.a), format_number(step.b)
    return f"{a} {step.op} {b} = {format_number(wrong)} (left: {format_numbers([*rest, wrong])})"


def propose(numbers: Sequence[Fraction], draw: Draw) -> str:
    """Possible next steps from ``numbers``, best-looking first."""
    moves = legal_steps(numbers)
    if not moves:
        return "No step is possible: only one number is left."
    noise = draw.temperature * _NOISE_SCALE
    ranked = [
        m
        for _, _, m in sorted(
            (-_glance(m.result) + _jit(draw, noise), k, m) for k, m in enumerate(moves)
        )
    ]
    head = "Possible next steps:"
    trace = _Trace(max(draw.max_tokens - count_tokens(head + "\n"), 0))
    good: list[Step] = []
    bad: list[Step] = []
    unchecked = list(ranked)
    if draw.max_tokens >= _MIN_CHECK_TOKENS and len(numbers) > 2:
        check_room = int(trace.allowance * _CHECK_SHARE)
        nodes = max(1, int(draw.max_tokens * _CHECK_NODES_PER_TOKEN))
        while unchecked:
            step = unchecked[0]
            reach = _Reach(draw, noise, nodes)
            reach.run(step.left)
            verdict = "reaches 24" if reach.found else "no 24 found"
            line = f"Check {format_numbers(step.left)}: {verdict}"
            if trace.used + count_tokens(line + "\n") > check_room:
                break
            trace.write(line)
            unchecked.pop(0)
            (good if reach.found else bad).append(step)
    listed: list[str] = []
    slip = slip_chance(draw.max_tokens)
    for step in [*good, *unchecked, *bad]:
        line = _slipped(step, draw) if draw.rng.random() < slip else step.line()
        if not trace.fits(line):
            break
        trace.write(line)
        listed.append(line)
    checks = trace.lines[: len(trace.lines) - len(listed)]
    return "\n".join([*checks, head, *listed])


def _jit(draw: Draw, noise: float) -> float:
    return noise * draw.rng.gauss(0.0, 1.0) if noise > 0 else 0.0


def evaluate(numbers: Sequence[Fraction], draw: Draw) -> str:
    """A judgement of whether ``numbers`` can still make 24, ending in one word."""
    shown = format_numbers(numbers)
    if len(numbers) == 1:
        word = "sure" if numbers[0] == TARGET else "impossible"
        return f"{shown} {'is' if word == 'sure' else 'is not'} 24.\n{word}"
    trace = _Trace(max(draw.max_tokens - _VERDICT_RESERVE, 0))
    reach = _Reach(draw, draw.temperature * _NOISE_SCALE, nodes=10**9, trace=trace)
    reach.run(numbers)
    if reach.found:
        word = "sure"
    elif reach.exhausted:
        word = "impossible"
    else:
        # Cut short: guess from a glance at the numbers.
        looks = sum(_glance(v) for v in numbers) / len(numbers)
        p_likely = min(max(0.55 + 0.3 * looks, 0.1), 0.85)
        word = "likely" if draw.rng.random() < p_likely else "impossible"
    if draw.rng.random() < flip_chance(draw.max_tokens):
        word = draw.rng.choice([w for w in ("sure", "likely", "impossible") if w != word])
    return "\n".join([*trace.lines, word])


class Game24StepSkill:
    name = "game24_steps"

    def respond(self, messages: list[Message], draw: Draw) -> str | None:
        for message in reversed(messages):
            if message["role"] == "assistant":
                continue
            parsed = parse_step_prompt(message["content"])
            if parsed is None:
                return None
            kind, numbers = parsed
            return propose(numbers, draw) if kind == "propose" else evaluate(numbers, draw)
        return None


SKILL = register_skill(Game24StepSkill())
