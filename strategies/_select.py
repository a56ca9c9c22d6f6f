"""Selection helpers shared by the sampling strategies: answer normalization, vote
books (plain or reward-weighted), the Adaptive-Consistency stopping rule, and the
"informative feedback" test refinement uses.

Not a strategy: modules whose name starts with "_" are not imported by the registry.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ponder.runtime import Context
from ponder.verifiers.base import Verdict

# What the "none" verifier says about every answer (ponder/verifiers/none.py): it
# carries no information about the answer, so it is no critique.
NO_VERIFIER_FEEDBACK = "no verifier configured"

# Added to every reward in weighted voting: groups whose rewards tie (e.g. all zero,
# under the "none" verifier) are ranked by their size, i.e. by a plain majority vote.
COUNT_PRIOR = 1e-6

_SPACE_RE = re.compile(r"\s+")
_SPACE_AROUND_SYMBOL_RE = re.compile(r"\s*([^\w\s])\s*")
_TRAILING_PUNCT = ".,;:!?"
_OPERATOR_ALIASES = str.maketrans({"−": "-", "×": "*", "÷": "/"})
_WRAPPING = " `$*\"'"
_DECIMAL_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
_FRACTION_RE = re.compile(r"[-+]?\d+\s*/\s*\d+")


def _as_number(text: str) -> Fraction | None:
    """The exact value of a plain number ("42", "-3.50", "1,000", "3/4"), else None."""
    try:
        if _DECIMAL_RE.fullmatch(text):
            return Fraction(text.replace(",", ""))
        if _FRACTION_RE.fullmatch(text):
            num, den = (part.strip() for part in text.split("/"))
            if int(den) != 0:
                return Fraction(int(num), int(den))
    except ValueError:  # beyond Python's int-parsing digit limit: compare as text
        return None
    return None


def _show_number(value: Fraction) -> str:
    return str(value)  # "42", "-7/2": equal numbers always print the same


def normalize_answer(answer: str | None) -> str | None:
    """The form answers are compared in, or None for no answer.

    - Unicode-normalized, case-folded, whitespace collapsed, wrapping quotes/markdown/``$``
      and trailing punctuation removed.
    - Plain numbers compare as numbers: "42", "42.0", "+42." and "1,000" vs "1000".
    - Expressions (Game of 24 answers) compare as written, with whitespace normalized:
      "(1+2+3)*4" equals "( 1 + 2 + 3 ) × 4" but not "4*(1+2+3)".
    """
    if answer is None:
        return None
    text = unicodedata.normalize("NFKC", answer).casefold().translate(_OPERATOR_ALIASES)
    text = _SPACE_RE.sub(" ", text)
    previous = None
    while text != previous:
        previous = text
        text = text.strip(_WRAPPING)
        text = text.rstrip(_TRAILING_PUNCT)
    if not text:
        return None
    number = _as_number(text)
    if number is not None:
        return _show_number(number)
    # Spaces next to operators, brackets and other symbols do not matter:
    # "(1+2+3)*4" is "( 1 + 2 + 3 ) * 4" and "x = 3" is "x=3"; "1 2" stays apart.
    return _SPACE_AROUND_SYMBOL_RE.sub(r"\1", text)


# --- voting --------------------------------------------------------------------------


@dataclass
class Group:
    """Every sample that gave one (normalized) answer."""

    key: str
    answer: str  # the first raw answer seen in the group, as the model wrote it
    first: int  # order of its first sample
    verdict: Verdict  # the verifier's verdict on ``answer``
    count: int = 0
    weight: float = 0.0  # sum of per-sample weights (1 per vote, or reward + prior)
    reached: int = 0  # order of the sample that brought ``weight`` to its current value


@dataclass
class VoteBook:
    """Votes over normalized answers, with a leader that changes only when another group
    strictly overtakes it (on a tie the leader stays).

    ``weighted=False`` is a majority vote (each sample weighs 1); ``weighted=True`` sums
    the verifier's scores per group (plus :data:`COUNT_PRIOR` per sample).

    The leader's *running* score, ``weight / (planned * unit)``, never decreases and rises
    strictly whenever the leader changes (the leading weight only grows), so proposing
    the leader after every batch lets each new leader replace the last one under
    ``ctx.propose``'s (passed, score) ranking. :meth:`final_score` — the leader's share of
    all the weight cast — is at least the running score, so the closing proposal replaces
    it too.
    """

    planned: int  # the most samples the strategy will add
    weighted: bool = False
    samples: int = 0  # every sample drawn, including ones with no answer
    groups: dict[str, Group] = field(default_factory=dict)

    @property
    def unit(self) -> float:
        """The most one sample can weigh."""
        return 1.0 + COUNT_PRIOR if self.weighted else 1.0

    def add(self, answer: str | None, verdict: Verdict) -> Group | None:
        """Count one sample; returns its group (None when it gave no answer)."""
        index = self.samples
        self.samples += 1
        key = normalize_answer(answer)
        if answer is None or key is None:
            return None
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, answer.strip(), index, verdict)
        group.count += 1
        if self.weighted:
            group.weight += max(verdict.score, 0.0) + COUNT_PRIOR
        else:
            group.weight += 1.0
        group.reached = index
        return group

    def ranked(self) -> list[Group]:
        """Groups, heaviest first; on a tie, the group that got there first (so the
        leader changes only when another group strictly overtakes it)."""
        return sorted(self.groups.values(), key=lambda g: (-g.weight, g.reached))

    def leader(self) -> Group | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def counts(self) -> dict[str, int]:
        """Votes per answer (as first written), most votes first."""
        return {g.answer: g.count for g in sorted(self.groups.values(), key=_by_votes)}

    def weights(self) -> dict[str, float]:
        return {g.answer: round(g.weight, 6) for g in self.ranked()}

    def running_score(self) -> float:
        leader = self.leader()
        if leader is None:
            return 0.0
        return min(leader.weight / (max(self.planned, 1) * self.unit), 1.0)

    def final_score(self) -> float:
        leader = self.leader()
        if leader is None:
            return 0.0
        total = sum(g.weight for g in self.groups.values())
        abstained = (self.samples - sum(g.count for g in self.groups.values())) * self.unit
        return min(leader.weight / max(total + abstained, 1e-12), 1.0)

    def leader_confidence(self) -> float:
        """Adaptive-Consistency's Beta stopping statistic on the top two vote counts."""
        by_votes = sorted(self.groups.values(), key=_by_votes)
        top = by_votes[0].count if by_votes else 0
        second = by_votes[1].count if len(by_votes) > 1 else 0
        return prob_leader_is_majority(top, second)

    def propose_leader(self, ctx: Context, *, final: bool) -> bool:
        """Offer the leading answer as the job's best-so-far; its verdict keeps the
        verifier's pass/fail and scores the vote (see the class docstring)."""
        leader = self.leader()
        if leader is None:
            return False
        score = self.final_score() if final else self.running_score()
        kind = "reward-weighted vote" if self.weighted else "majority vote"
        feedback = f"{kind}: {leader.count} of {self.samples} samples"
        if informative(leader.verdict):
            feedback += f"; verifier: {leader.verdict.feedback}"
        return ctx.propose(leader.answer, Verdict(leader.verdict.passed, score, feedback))

    def event_data(self) -> dict[str, Any]:
        leader = self.leader()
        data: dict[str, Any] = {
            "samples": self.samples,
            "counts": self.counts(),
            "leader": None if leader is None else leader.answer,
        }
        if self.weighted:
            data["weights"] = self.weights()
        return data


def _by_votes(g: Group) -> tuple[int, int]:
    return (-g.count, g.first)


def prob_leader_is_majority(top: int, second: int) -> float:
    """P(p1 > p2 | votes): under a uniform prior the leader's share of the top two,
    p1 / (p1 + p2), is Beta(top + 1, second + 1); this is P(that share > 1/2), the
    Beta stopping criterion of Adaptive-Consistency (Aggarwal et al., 2023).

    For integer parameters the Beta tail is a binomial sum:
    P(Beta(a, b) > 1/2) = P(Binomial(a + b - 1, 1/2) <= a - 1), computed exactly.
    """
    if top < 0 or second < 0:
        raise ValueError("vote counts cannot be negative")
    trials = top + second + 1
    # Integer arithmetic (no float overflow or underflow at any vote count).
    hits = sum(math.comb(trials, k) for k in range(top + 1))
    return hits / (1 << trials)


def best_by_score(pairs: list[tuple[str | None, Verdict]]) -> tuple[str, Verdict] | None:
    """The highest-scoring answer (first on ties), ignoring pass/fail."""
    best: tuple[str, Verdict] | None = None
    for answer, verdict in pairs:
        if answer is None:
            continue
        if best is None or verdict.score > best[1].score:
            best = (answer, verdict)
    return best


def informative(verdict: Verdict) -> bool:
    """Whether the verifier's feedback says something about the answer (the "none"
    verifier's stock reply does not)."""
    feedback = verdict.feedback.strip()
    return bool(feedback) and feedback != NO_VERIFIER_FEEDBACK


def rank(verdict: Verdict) -> tuple[bool, float]:
    """How ``ctx.propose`` orders candidates."""
    return (verdict.passed, verdict.score)
