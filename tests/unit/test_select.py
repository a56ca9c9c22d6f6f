"""Selection helpers shared by the sampling strategies (strategies/_select.py)."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import cast

import pytest

from ponder.runtime import Candidate, Context
from ponder.verifiers.base import Verdict
from strategies._select import (
    NO_VERIFIER_FEEDBACK,
    VoteBook,
    best_by_score,
    informative,
    normalize_answer,
    prob_leader_is_majority,
)

WRONG = Verdict(False, 0.0, "")


class FakeContext:
    """Just ``propose``, ranked like the real Context (passed first, then score)."""

    def __init__(self) -> None:
        self.best: Candidate | None = None
        self.proposals = 0

    def propose(self, answer: str | None, verdict: Verdict) -> bool:
        if answer is None:
            return False
        cand = Candidate(answer, verdict)
        if self.best is not None and cand.rank() <= self.best.rank():
            return False
        self.best = cand
        self.proposals += 1
        return True


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("42", "42.0"),
        ("42", "+42."),
        ("1,000", "1000"),
        ("3/4", "0.75"),
        ("-7/2", "-3.5"),
        ("Paris.", "  paris "),
        ("**17**", "17"),
        ("$12$", "12"),
        ("`x = 3`", "X=3"),
        ("(1+2+3)*4", "( 1 + 2 + 3 ) * 4"),
        ("8 / (3 - 8/3)", "8/(3-8/3)"),
        ("(6 − 2) × 6", "(6-2)*6"),
        ("−5", "-5.0"),
        ("(10 - 4) * (13 - 9)", "(10 - 4)\t*  (13 - 9)"),
    ],
)
def test_normalize_same(a: str, b: str) -> None:
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("42", "43"),
        ("4*(1+2+3)", "(1+2+3)*4"),  # expressions compare as written
        ("12", "1 2"),
        ("new york", "newyork"),
    ],
)
def test_normalize_different(a: str, b: str) -> None:
    assert normalize_answer(a) != normalize_answer(b)


@pytest.mark.parametrize("text", [None, "", "   ", " . ", "``"])
def test_normalize_no_answer(text: str | None) -> None:
    assert normalize_answer(text) is None


def test_numbers_print_canonically() -> None:
    assert normalize_answer("1,000.50") == str(Fraction(2001, 2))
    assert normalize_answer("6/0") == "6/0"  # not a number: kept as an expression
    huge = "9" * 5000  # past Python's int-parsing limit: compared as text, no error
    assert normalize_answer(huge) == huge


def test_beta_stopping_statistic() -> None:
    assert prob_leader_is_majority(0, 0) == 0.5
    assert prob_leader_is_majority(3, 0) == 15 / 16
    assert prob_leader_is_majority(4, 0) == 31 / 32  # 4 agreeing samples pass 0.95
    assert prob_leader_is_majority(6, 1) == 1 - 9 / 256
    assert prob_leader_is_majority(5, 1) < 0.95
    for a in range(8):
        for b in range(8):
            total = prob_leader_is_majority(a, b) + prob_leader_is_majority(b, a)
            assert total == pytest.approx(1.0)
            assert prob_leader_is_majority(a + 1, b) > prob_leader_is_majority(a, b)
    assert 0.0 < prob_leader_is_majority(2000, 1990) < 1.0  # no overflow at large counts
    with pytest.raises(ValueError):
        prob_leader_is_majority(-1, 0)


def test_majority_vote_groups_normalized_answers() -> None:
    book = VoteBook(planned=6)
    for answer in ["42", "41", "42.0", None, "41", " 42 "]:
        book.add(answer, WRONG)
    leader = book.leader()
    assert leader is not None
    assert (leader.answer, leader.count) == ("42", 3)
    assert book.counts() == {"42": 3, "41": 2}
    assert book.samples == 6
    assert book.final_score() == pytest.approx(3 / 6)  # the abstention counts as a sample
    assert book.leader_confidence() == prob_leader_is_majority(3, 2)


def test_ties_keep_the_leader() -> None:
    book = VoteBook(planned=4)
    leaders = []
    for answer in ["b", "a", "a", "b"]:
        book.add(answer, WRONG)
        leader = book.leader()
        assert leader is not None
        leaders.append(leader.answer)
    assert leaders == ["b", "b", "a", "a"]  # "a" took the lead at 2-1 and kept it at 2-2


def test_weighted_vote_sums_scores() -> None:
    book = VoteBook(planned=5, weighted=True)
    book.add("7", Verdict(False, 0.2))
    book.add("7", Verdict(False, 0.2))
    book.add("7", Verdict(False, 0.2))
    book.add("9", Verdict(True, 1.0))
    leader = book.leader()
    assert leader is not None and leader.answer == "9"  # 1.0 outweighs 3 x 0.2
    book.add("7", Verdict(False, 0.2))
    book.add("7", Verdict(False, 0.2))
    assert book.leader().answer == "7"  # type: ignore[union-attr]  # 5 x 0.2 = 1.0 + prior


def test_weighted_vote_with_zero_scores_is_a_majority_vote() -> None:
    book = VoteBook(planned=5, weighted=True)
    for answer in ["x", "y", "y", "x", "y"]:
        book.add(answer, WRONG)
    assert book.leader().answer == "y"  # type: ignore[union-attr]


@pytest.mark.parametrize("weighted", [False, True])
def test_each_new_leader_replaces_the_proposed_best(weighted: bool) -> None:
    """Proposing the leader after each batch tracks the vote through ctx.propose's
    (passed, score) ranking, and the closing proposal is the leader's share."""
    rng = random.Random(5)
    for trial in range(30):
        planned = rng.randint(1, 20)
        ctx = FakeContext()
        book = VoteBook(planned=planned, weighted=weighted)
        while book.samples < planned:
            for _ in range(min(rng.randint(1, 3), planned - book.samples)):
                answer = rng.choice(["a", "b", "c", "d", None])
                book.add(answer, Verdict(False, rng.choice([0.0, 0.1, 0.4])))
            book.propose_leader(cast(Context, ctx), final=False)
            leader = book.leader()
            if leader is not None:
                assert ctx.best is not None and ctx.best.answer == leader.answer, trial
        book.propose_leader(cast(Context, ctx), final=True)
        leader = book.leader()
        if leader is not None:
            assert ctx.best is not None
            assert ctx.best.answer == leader.answer
            assert ctx.best.verdict.score == pytest.approx(book.final_score())


def test_vote_winner_outranks_partial_credit_but_not_a_pass() -> None:
    ctx = FakeContext()
    book = VoteBook(planned=3)
    book.add("wrong", Verdict(False, 0.1, "evaluates to 2"))
    book.propose_leader(cast(Context, ctx), final=True)
    assert ctx.best is not None and ctx.best.verdict.score == 1.0
    assert "majority vote: 1 of 1" in ctx.best.verdict.feedback
    assert "evaluates to 2" in ctx.best.verdict.feedback
    ctx.propose("right", Verdict(True, 1.0))
    book.propose_leader(cast(Context, ctx), final=True)
    assert ctx.best.answer == "right"


def test_best_by_score_and_informative() -> None:
    pairs: list[tuple[str | None, Verdict]] = [
        (None, Verdict(False, 0.9)),
        ("a", Verdict(False, 0.3)),
        ("b", Verdict(False, 0.5)),
        ("c", Verdict(False, 0.5)),
    ]
    assert best_by_score(pairs) == ("b", Verdict(False, 0.5))
    assert best_by_score([]) is None
    assert informative(Verdict(False, 0.2, "evaluates to 23, not 24"))
    assert not informative(Verdict(False, 0.0, NO_VERIFIER_FEEDBACK))
    assert not informative(Verdict(False, 0.0, "  "))
