"""Test-time scaling: accuracy against tokens spent, for `auto` and the strongest simple
strategies a user would write, in two regimes.

- **verifier**: each problem's own verifier checks candidates (Game of 24: the
  expression; arithmetic: the number against ``expected``). Best-of-N stops at the first
  verified sample, one at a time or in batches of 8, like the product's default.
- **none**: the job runs with the ``none`` verifier and never sees ``expected`` (it is
  removed from the problem); the bench scores the job's final answer itself, with the
  task's checker. Nothing can stop on a verdict, so votes must decide when to stop.

Every strategy runs in this process with the simulated model (no services). Problems
and seeds (``--problems``):

- ``heldout`` (default; the figures the README quotes): never used to tune `auto` or the
  simulator. Game of 24: puzzles ranked 51st-150th easiest and 51st-150th hardest of
  ``game24-all`` (the shipped ``game24-easy`` / ``-hard`` are the 50 at each end),
  minus every puzzle the tests, docs or the simulator's calibration name, drawn with
  ``random.Random("scaling-heldout-game24-easy" / "-hard")``. Arithmetic: word problems
  of depth 2, 4 and 8 generated afresh with ``random.Random("scaling-heldout-arithmetic-
  d<depth>")`` (the shipped ``arithmetic-d*`` and the simulator's calibration use other
  seeds; a question equal to a shipped one is skipped). Job seeds 7_000_000 + i.
- ``tuning``: the sets `auto`'s defaults were chosen on: the first ``--per-set`` items of
  ``game24-easy``, ``game24-hard``, ``arithmetic-d2``, ``-d4``, ``-d8``; job seeds
  10_000 + i.

It prints, per regime, accuracy / mean tokens / mean samples for every setting, the
tokens `auto` needs to match each baseline (with a verifier: the same accuracy; without:
at most one point lower), a per-difficulty breakdown, and last the headline ratios with
their targets; it writes a PNG of the curves.

    python bench/scaling.py [--per-set 40] [--problems heldout|tuning]
        [--regimes verifier none] [--out bench/out/scaling.png]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ponder.datasets import as_problem, load_dataset
from ponder.families import verifier_for
from ponder.families.arithmetic import make_problem
from ponder.problem import Problem
from ponder.sim.model import SimProvider
from strategies.auto import AutoParams
from strategies.offline import run_offline

UNCAPPED = {"max_tokens": 10**8}
NO_VERIFIER = {"type": "none"}
STEP_ONLY = {"beam_search", "tree_of_thoughts", "mcts"}  # need a task with step prompts
SET_ORDER = ["game24 easy", "game24 hard", "arithmetic d2", "arithmetic d4", "arithmetic d8"]
VOTE_TOLERANCE = 0.01  # without a verifier, "matching" allows one point less accuracy

TUNING_SETS = {
    "game24 easy": "game24-easy",
    "game24 hard": "game24-hard",
    "arithmetic d2": "arithmetic-d2",
    "arithmetic d4": "arithmetic-d4",
    "arithmetic d8": "arithmetic-d8",
}
TUNING_SEED = 10_000
HELDOUT_SEED = 7_000_000
HELDOUT_BAND = (50, 150)  # ranks from each end of game24-all (0-based, end exclusive)
# Puzzles named in the tests, the README or the simulator's calibration (never held out).
NAMED_PUZZLES = {
    tuple(sorted(p))
    for p in (
        [1, 1, 1, 8], [1, 1, 4, 6], [1, 2, 3, 4], [1, 3, 4, 6], [1, 4, 5, 6], [1, 5, 5, 5],
        [1, 6, 11, 13], [2, 2, 2, 12], [2, 3, 4, 6], [2, 3, 5, 12], [2, 5, 7, 11],
        [2, 7, 7, 10], [3, 3, 7, 7], [3, 3, 8, 8], [4, 4, 10, 10], [4, 6, 6, 6],
        [4, 9, 10, 13], [6, 6, 6, 6], [8, 10, 12, 14], [1, 1, 1, 1], [1, 1, 1, 2],
    )
}  # fmt: skip


@dataclass(frozen=True)
class Item:
    set: str
    problem: dict[str, Any]  # with `expected` (the bench's answer key)
    seed: int

    @property
    def is_game24(self) -> bool:
        return self.problem.get("task") == "game24"


@dataclass(frozen=True)
class Outcome:
    set: str
    solved: bool
    tokens: int
    samples: int


@dataclass
class Point:
    regime: str
    curve: str  # the plotted line this setting belongs to
    strategy: str
    label: str
    outcomes: list[Outcome] = field(default_factory=list)

    def pick(self, sets: set[str] | None = None) -> list[Outcome]:
        return [o for o in self.outcomes if sets is None or o.set in sets]

    def accuracy(self, sets: set[str] | None = None) -> float:
        got = self.pick(sets)
        return sum(o.solved for o in got) / max(len(got), 1)

    def tokens(self, sets: set[str] | None = None) -> float:
        got = self.pick(sets)
        return sum(o.tokens for o in got) / max(len(got), 1)

    def samples(self, sets: set[str] | None = None) -> float:
        got = self.pick(sets)
        return sum(o.samples for o in got) / max(len(got), 1)

    def sets(self) -> set[str]:
        return {o.set for o in self.outcomes}

    @property
    def name(self) -> str:
        return f"{self.curve} {self.label}"

    @property
    def short(self) -> str:
        """A column heading: the curve's short name and the setting."""
        return f"{SHORT.get(self.curve, self.curve)} {self.label.replace('max_tokens=', '@')}"


# --- problems ---------------------------------------------------------------------------


def tuning_items(per_set: int) -> list[Item]:
    items: list[Item] = []
    for label, dataset in TUNING_SETS.items():
        for entry in load_dataset(dataset)[:per_set]:
            items.append(Item(label, as_problem(entry), TUNING_SEED + len(items)))
    return items


def heldout_items(per_set: int) -> list[Item]:
    ranked = [e for e in load_dataset("game24-all")]
    lo, hi = HELDOUT_BAND
    bands = {"game24 easy": ranked[lo:hi], "game24 hard": ranked[len(ranked) - hi : -lo]}
    items: list[Item] = []
    for label, band in bands.items():
        pool = [e for e in band if tuple(sorted(e["input"]["numbers"])) not in NAMED_PUZZLES]
        rng = random.Random(f"scaling-heldout-{label.replace(' ', '-')}")
        for entry in rng.sample(pool, min(per_set, len(pool))):
            items.append(Item(label, as_problem(entry), HELDOUT_SEED + len(items)))
    for depth in (2, 4, 8):
        shipped = {e["input"]["question"] for e in load_dataset(f"arithmetic-d{depth}")}
        rng = random.Random(f"scaling-heldout-arithmetic-d{depth}")
        made = 0
        while made < per_set:
            question, answer = make_problem(depth, rng)
            if question in shipped:
                continue
            problem = {"task": "arithmetic", "input": {"question": question}, "expected": answer}
            items.append(Item(f"arithmetic d{depth}", problem, HELDOUT_SEED + len(items)))
            made += 1
    return items


# --- running ----------------------------------------------------------------------------


async def _correct(problem: dict[str, Any], answer: str | None) -> bool:
    """The bench's own check of a final answer (the job never saw ``expected``)."""
    if answer is None:
        return False
    parsed = Problem.model_validate(problem)
    return (await verifier_for(None, parsed).verify(parsed, answer)).passed


async def measure(
    regime: str, strategy: str, params: dict[str, Any], budget: dict[str, Any], items: list[Item]
) -> list[Outcome]:
    provider = SimProvider()
    out: list[Outcome] = []
    for item in items:
        if strategy in STEP_ONLY and not item.is_game24:
            continue
        if regime == "verifier":
            result = await run_offline(
                item.problem, strategy, params, budget, provider=provider, seed=item.seed
            )
            solved = result.verified
        else:
            hidden = {k: v for k, v in item.problem.items() if k != "expected"}
            result = await run_offline(
                hidden,
                strategy,
                params,
                budget,
                provider=provider,
                seed=item.seed,
                verifier=NO_VERIFIER,
            )
            answer = None if result.result is None else result.result.get("answer")
            solved = await _correct(item.problem, answer)
        out.append(Outcome(item.set, solved, result.tokens, result.calls))
    return out


Setting = tuple[str, str, str, dict[str, Any], dict[str, Any]]  # curve, strategy, label, ...

AUTO = AutoParams()
SEQUENTIAL = "best-of-32, stop when verified, 1 at a time"
BATCHED = "best-of-N, stop when verified, batches of 8"
NO_EARLY_STOP = "best-of-N, no early stop"
SC32 = "self-consistency@32"
ADAPTIVE = "adaptive self-consistency (n<=32)"
LONG_VOTE = f"self-consistency@N, max_tokens={AUTO.vote_max_tokens}"
ADAPTIVE_BY_CONFIDENCE = f"adaptive self-consistency, max_tokens={AUTO.vote_max_tokens}, min 2"
SHORT = {
    SEQUENTIAL: "seq. best-of-32",
    SC32: "self-consistency@32",
    ADAPTIVE: "adaptive SC",
    LONG_VOTE: f"SC@{AUTO.vote_max_tokens}",
    "one sample": "one sample",
}
CAPS = (128, 256, 512, 1024, 2048, 4096)
VOTE_CAPS = (128, 256, 512, 1024, 2048)  # 4096 votes the same as 2048 on these problems
N_LADDER = (1, 2, 4, 8, 16, 32)


def _bon(n: int, batch: int, cap: int, stop: bool) -> dict[str, Any]:
    return {"n": n, "batch_size": batch, "max_tokens": cap, "stop_when_verified": stop}


def verifier_settings() -> list[Setting]:
    s: list[Setting] = []
    s += [
        (NO_EARLY_STOP, "best_of_n", f"N={n}", _bon(n, 8, 256, False), UNCAPPED) for n in N_LADDER
    ]
    s += [
        ("best-of-N, stop when verified, 1 at a time", "best_of_n", f"N={n}",
         _bon(n, 1, 256, True), UNCAPPED)
        for n in N_LADDER
    ]  # fmt: skip
    s += [
        (BATCHED, "best_of_n", f"N={n}",
         _bon(n, 8, 256, True), UNCAPPED)
        for n in (8, 16, 32)
    ]  # fmt: skip
    s += [
        (SEQUENTIAL, "best_of_n", f"max_tokens={c}",
         _bon(32, 1, c, True), UNCAPPED)
        for c in CAPS
    ]  # fmt: skip
    s += [
        ("self-consistency (stops when verified)", "self_consistency", f"N={n}",
         {"n": n, "batch_size": 4, "max_tokens": 256}, UNCAPPED)
        for n in (4, 8, 16, 32)
    ]  # fmt: skip
    s += [
        ("refine", "refine", f"R={r}", {"rounds": r, "max_tokens": 256}, UNCAPPED)
        for r in (0, 1, 2, 4, 8)
    ]
    s += [
        ("thinking", "thinking", f"T={t}", {"thinking_tokens": t}, UNCAPPED)
        for t in (256, 512, 1024, 2048, 4096)
    ]
    s += [
        ("beam_search", "beam_search", f"B={b}", {"beam_width": b}, {"max_tokens": 40_000})
        for b in (1, 2, 4)
    ]
    s += [
        ("tree_of_thoughts", "tree_of_thoughts", f"b={b}", {"breadth": b}, {"max_tokens": 40_000})
        for b in (1, 2, 4)
    ]
    s += [
        ("mcts", "mcts", f"I={i}", {"iterations": i}, {"max_tokens": 40_000}) for i in (16, 32, 64)
    ]
    s += [
        ("one sample", "best_of_n", f"max_tokens={AUTO.probe_max_tokens}",
         _bon(1, 1, AUTO.probe_max_tokens, True), UNCAPPED)
    ]  # fmt: skip
    s += _auto_settings((500, 750, 1000, 1500, 2000, 4000))
    return s


def none_settings() -> list[Setting]:
    s: list[Setting] = []
    s += [
        ("self-consistency@N", "self_consistency", f"N={n}",
         {"n": n, "batch_size": n, "max_tokens": 256}, UNCAPPED)
        for n in (1, 4, 8, 16, 32)
    ]  # fmt: skip
    s += [
        (SC32, "self_consistency", f"max_tokens={c}",
         {"n": 32, "batch_size": 32, "max_tokens": c}, UNCAPPED)
        for c in VOTE_CAPS
    ]  # fmt: skip
    s += [
        (ADAPTIVE, "self_consistency", f"max_tokens={c}",
         {"n": 32, "batch_size": 1, "max_tokens": c, "adaptive": True}, UNCAPPED)
        for c in VOTE_CAPS
    ]  # fmt: skip
    s += [
        (LONG_VOTE, "self_consistency", f"N={n}",
         {"n": n, "batch_size": n, "max_tokens": AUTO.vote_max_tokens}, UNCAPPED)
        for n in (1, 2, 3, 5, 8)
    ]  # fmt: skip
    s += [
        (ADAPTIVE_BY_CONFIDENCE, "self_consistency", f"confidence={c}",
         {"n": 32, "batch_size": 1, "max_tokens": AUTO.vote_max_tokens, "adaptive": True,
          "confidence": c, "min_samples": 2}, UNCAPPED)
        for c in (0.75, 0.8, 0.9)
    ]  # fmt: skip
    s += [
        ("refine (model critique)", "refine", f"R={r}", {"rounds": r, "max_tokens": 256}, UNCAPPED)
        for r in (0, 1, 2, 4)
    ]
    s += [
        ("thinking", "thinking", f"T={t}", {"thinking_tokens": t}, UNCAPPED)
        for t in (256, 512, 1024, 2048, 4096)
    ]
    s += _auto_settings((500, 750, 1000, 1250, 1500, 2000, 3000, 4000, 8000))
    return s


def _auto_settings(budgets: tuple[int, ...]) -> list[Setting]:
    s: list[Setting] = [("auto", "auto", f"budget={b}", {}, {"max_tokens": b}) for b in budgets]
    s.append(("auto", "auto", "default", {}, UNCAPPED))
    return s


# --- reading the results ----------------------------------------------------------------


def curve(points: list[Point], name: str) -> list[Point]:
    return [p for p in points if p.curve == name]


def find(points: list[Point], name: str, label: str) -> Point | None:
    return next((p for p in points if p.curve == name and p.label == label), None)


def strongest(points: list[Point], name: str) -> Point | None:
    """A curve's most accurate setting (the cheapest of those): its best setting."""
    pts = curve(points, name)
    if not pts:
        return None
    top = max(p.accuracy() for p in pts)
    return min((p for p in pts if p.accuracy() >= top - 1e-9), key=lambda p: p.tokens())


@dataclass(frozen=True)
class Match:
    """The cheapest `auto` setting that reaches ``target`` (a baseline's accuracy, less
    the tolerance) on the baseline's problems."""

    baseline: Point
    target: float
    auto: Point | None
    sets: set[str] | None  # None: every problem; else only these sets (step search)
    auto_best: float  # the best accuracy any `auto` setting reached on them

    @property
    def ratio(self) -> float:
        if self.auto is None:
            return float("inf")
        return self.auto.tokens(self.sets) / max(self.baseline.tokens(self.sets), 1e-9)

    def line(self) -> str:
        base, sets = self.baseline, self.sets
        scope = "" if sets is None else "  [game24 problems only]"
        head = f"{base.name:<58} {base.accuracy(sets):>6.3f} {base.tokens(sets):>8.0f}"
        if self.auto is None:
            return f"{head}   never reaches {self.target:.3f} (best {self.auto_best:.3f}){scope}"
        got = f"{self.auto.accuracy(sets):.3f} {self.auto.tokens(sets):>6.0f} ({self.auto.label})"
        return f"{head}   {got:<28} {self.ratio:>6.3f}{scope}"


def match(points: list[Point], baseline: Point, tolerance: float) -> Match:
    everything = set().union(*(p.sets() for p in points))
    sets = None if baseline.sets() >= everything else baseline.sets()
    target = baseline.accuracy(sets) - tolerance
    autos = [p for p in curve(points, "auto") if p.pick(sets)]
    reached = [p for p in autos if p.accuracy(sets) >= target - 1e-9]
    found = min(reached, key=lambda p: p.tokens(sets)) if reached else None
    best = max((p.accuracy(sets) for p in autos), default=0.0)
    return Match(baseline, target, found, sets, best)


def oracle(points: list[Point], name: str) -> tuple[float, float, dict[str, str]]:
    """What an allocator told each problem's difficulty set in advance would do with the
    settings of curve ``name``: per set, the most accurate setting (cheapest of those).
    Returns the mixture's accuracy, mean tokens, and the setting picked per set."""
    pts = curve(points, name)
    solved = tokens = count = 0.0
    picks: dict[str, str] = {}
    for s in SET_ORDER:
        one = {s}
        scoped = [p for p in pts if p.pick(one)]
        if not scoped:
            continue
        top = max(p.accuracy(one) for p in scoped)
        best = min(
            (p for p in scoped if p.accuracy(one) >= top - 1e-9), key=lambda p: p.tokens(one)
        )
        n = len(best.pick(one))
        solved += best.accuracy(one) * n
        tokens += best.tokens(one) * n
        count += n
        picks[s] = best.label
    return solved / max(count, 1), tokens / max(count, 1), picks


# --- printing ---------------------------------------------------------------------------


def print_breakdown(columns: list[Point]) -> None:
    print("\n  per difficulty: accuracy / mean tokens / mean samples")
    print(f"  {'set':<14}" + "".join(f" | {c.short[:26]:<26}" for c in columns))
    for s in SET_ORDER:
        one = {s}
        cells = ""
        for c in columns:
            cell = (
                f"{c.accuracy(one):.2f} / {c.tokens(one):>5.0f} / {c.samples(one):>4.1f}"
                if c.pick(one)
                else "-"
            )
            cells += f" | {cell:<26}"
        print(f"  {s:<14}{cells}")


def print_matches(rows: list[Match], tolerance: float) -> None:
    within = "" if tolerance == 0 else f" less {tolerance:.2f}"
    print(
        f"\n  tokens `auto` needs to reach each baseline's accuracy{within} (same problems, seeds):"
    )
    print(f"  {'baseline':<58} {'acc':>6} {'tokens':>8}   {'auto: acc tokens (setting)':<28} ratio")
    for row in rows:
        print("  " + row.line())


def headline(regime: str, which: str, row: Match, target: float | None) -> str:
    base = row.baseline
    goal = (
        ""
        if target is None
        else f"; target <= {target}: " + ("met" if row.ratio <= target else "NOT MET")
    )
    if row.auto is None:
        return (
            f"  {regime}, vs {which} {base.name} ({base.accuracy():.3f} at "
            f"{base.tokens():.0f} tokens): auto never reaches {row.target:.3f}{goal}"
        )
    return (
        f"  {regime}, vs {which} {base.name} ({base.accuracy():.3f} at {base.tokens():.0f} "
        f"tokens): auto {row.auto.accuracy():.3f} at {row.auto.tokens():.0f} tokens "
        f"({row.auto.label}) = {row.ratio:.3f} of the tokens{goal}"
    )


def headlines_for(
    regime: str,
    points: list[Point],
    name: str,
    tolerance: float,
    target: float | None,
    which: tuple[str, ...] = ("usual", "best", "hardest"),
) -> list[str]:
    """Headlines against curve ``name``: at the bench's usual cap of 256 (if the curve has
    it), at its best setting, and at the setting hardest for `auto` to match."""
    rows = [match(points, p, tolerance) for p in curve(points, name)]
    if not rows:
        return []
    best = strongest(points, name)
    picked = {
        "usual": next((r for r in rows if r.baseline.label == "max_tokens=256"), None),
        "best": next(r for r in rows if r.baseline is best),
        "hardest": max(rows, key=lambda r: r.ratio),
    }
    out: list[tuple[str, Match]] = []
    for kind in which:
        row = picked[kind]
        if row is not None and all(row is not r for _, r in out):
            out.append((kind, row))
    return [headline(regime, f"{kind}:", row, target) for kind, row in out]


def report(regime: str, points: list[Point]) -> list[str]:
    """Per-difficulty breakdown, the tokens-to-match table and this regime's headlines."""
    auto = find(points, "auto", "default")
    if regime == "verifier":
        label, tolerance = "with a verifier", 0.0
        columns = [
            auto,
            find(points, "one sample", f"max_tokens={AUTO.probe_max_tokens}"),
            find(points, SEQUENTIAL, "max_tokens=256"),
            strongest(points, SEQUENTIAL),
        ]
        sweeps = [SEQUENTIAL]
        bests = [BATCHED, NO_EARLY_STOP, "self-consistency (stops when verified)", "refine",
                 "thinking", "beam_search", "tree_of_thoughts", "mcts"]  # fmt: skip
    else:
        label, tolerance = "without a verifier", VOTE_TOLERANCE
        columns = [auto, find(points, LONG_VOTE, "N=1"), find(points, SC32, "max_tokens=256"),
                   strongest(points, ADAPTIVE)]  # fmt: skip
        sweeps = [SC32, ADAPTIVE, LONG_VOTE, ADAPTIVE_BY_CONFIDENCE]
        bests = ["refine (model critique)", "thinking"]
    present = [c for c in columns if c is not None]
    print_breakdown([c for i, c in enumerate(present) if all(c is not d for d in present[:i])])
    rows = [match(points, p, tolerance) for name in sweeps for p in curve(points, name)]
    rows += [
        match(points, best, tolerance)
        for best in (strongest(points, name) for name in bests)
        if best is not None
    ]
    print_matches(rows, tolerance)
    if regime == "none":
        return [
            *headlines_for(label, points, SC32, tolerance, 0.25),
            *headlines_for(label, points, ADAPTIVE, tolerance, None, ("best", "hardest")),
            *headlines_for(label, points, ADAPTIVE_BY_CONFIDENCE, tolerance, None, ("hardest",)),
            *headlines_for(label, points, LONG_VOTE, tolerance, None, ("best", "hardest")),
        ]
    lines = headlines_for(label, points, SEQUENTIAL, tolerance, 0.5)
    acc, tokens, picks = oracle(points, SEQUENTIAL)
    base = find(points, SEQUENTIAL, "max_tokens=256")
    top = strongest(points, SEQUENTIAL)
    if base is not None and top is not None:
        chosen = ", ".join(f"{s} {v.split('=')[1]}" for s, v in picks.items())
        lines.append(
            f"  for scale, {label}: a hindsight oracle that knows each problem's difficulty "
            f"set and gives it that set's best cap ({chosen}) reaches {acc:.3f} with "
            f"{tokens:.0f} tokens = {tokens / base.tokens():.3f} of the usual and "
            f"{tokens / top.tokens():.3f} of the best {SEQUENTIAL}"
        )
    return lines


def plot(points: list[Point], regimes: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, len(regimes), figsize=(8 * len(regimes), 5.5), squeeze=False)
    for ax, regime in zip(axes[0], regimes, strict=True):
        mine = [p for p in points if p.regime == regime and p.curve != "one sample"]
        names = list(dict.fromkeys(p.curve for p in mine))
        for name in names:
            pts = curve(mine, name)  # in the order of the settings (N, cap or budget up)
            if any(p.strategy in STEP_ONLY for p in pts):
                name = f"{name} (game24 only)"
            style = {"linewidth": 2.5, "color": "black"} if name == "auto" else {}
            ax.plot(
                [p.tokens() for p in pts],
                [p.accuracy() for p in pts],
                marker="o",
                label=name,
                **style,
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("mean tokens per problem (log)")
        ax.set_ylabel("accuracy")
        title = "with a verifier" if regime == "verifier" else "without a verifier (vote)"
        ax.set_title(f"Test-time scaling, simulated model: {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--per-set", type=int, default=40, help="problems in each difficulty set")
    ap.add_argument("--problems", choices=("heldout", "tuning"), default="heldout")
    ap.add_argument(
        "--regimes", nargs="+", choices=("verifier", "none"), default=["verifier", "none"]
    )
    ap.add_argument("--only", nargs="*", help="run only these curves (and auto's)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/scaling.png"))
    args = ap.parse_args()

    items = (
        heldout_items(args.per_set) if args.problems == "heldout" else tuning_items(args.per_set)
    )
    seed0 = HELDOUT_SEED if args.problems == "heldout" else TUNING_SEED
    print(
        f"{len(items)} {args.problems} problems, {args.per_set} per set "
        f"({', '.join(SET_ORDER)}); job seeds {seed0}..{seed0 + len(items) - 1}"
    )
    if args.problems == "heldout":
        print(
            "  held out: game24 ranks 51-150 from each end of game24-all (not game24-easy/-hard, "
            "no puzzle named in tests or docs), arithmetic generated with "
            "random.Random('scaling-heldout-arithmetic-d<depth>')"
        )
    print(f"  auto's defaults: {AUTO.model_dump()}")
    started = time.perf_counter()
    points: list[Point] = []
    headlines: list[str] = []
    settings: dict[str, Callable[[], list[Setting]]] = {
        "verifier": verifier_settings,
        "none": none_settings,
    }
    for regime in args.regimes:
        title = "WITH A VERIFIER" if regime == "verifier" else "WITHOUT A VERIFIER (none)"
        print(f"\n== {title} ==")
        mine: list[Point] = []
        for name, strategy, label, params, budget in settings[regime]():
            wanted = args.only is None or name in args.only or name in ("auto", "one sample")
            if not wanted:
                continue
            outcomes = asyncio.run(measure(regime, strategy, params, budget, items))
            point = Point(regime, name, strategy, label, outcomes)
            mine.append(point)
            print(
                f"  {name:<46} {label:<16} {point.accuracy():>8.3f} {point.tokens():>8.0f} "
                f"{point.samples():>7.1f} {len(outcomes):>4}",
                flush=True,
            )
        points += mine
        headlines += report(regime, mine)
    plot(points, args.regimes, args.out)
    print(f"\nplot: {args.out}  ({time.perf_counter() - started:.0f} s)")
    print(f"HEADLINES ({args.problems} problems):")
    for line in headlines:
        print(line)


if __name__ == "__main__":
    main()
