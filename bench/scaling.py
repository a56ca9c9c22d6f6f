"""Test-time scaling: accuracy against tokens spent, per strategy, over a ladder of budgets.

Runs every strategy in this process with the simulated model (no services) on a fixed
mixed-difficulty set — easy and hard Game of 24 puzzles, arithmetic word problems of
depth 2, 4 and 8 — prints a table of accuracy vs mean tokens, writes a PNG of the
scaling curves, and prints last the headline: the tokens `auto` needs to reach the
accuracy of best-of-N at N=32, as a fraction of best-of-N's tokens (target <= 0.25).

    python bench/scaling.py [--per-set 8] [--out bench/out/scaling.png]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ponder.datasets import load_dataset
from ponder.sim.model import SimProvider
from strategies.offline import run_offline

SETS = ["game24-easy", "game24-hard", "arithmetic-d2", "arithmetic-d4", "arithmetic-d8"]
UNCAPPED = {"max_tokens": 10**8}

# strategy -> list of (label, params, budget): each rung spends more
LADDERS: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "best_of_n": [
        (
            f"N={n}",
            {"n": n, "batch_size": 8, "max_tokens": 256, "stop_when_verified": False},
            UNCAPPED,
        )
        for n in (1, 2, 4, 8, 16, 32)
    ],
    "self_consistency": [
        (
            f"N={n}",
            {"n": n, "batch_size": 4, "max_tokens": 256, "stop_when_verified": False},
            UNCAPPED,
        )
        for n in (1, 4, 8, 16)
    ],
    "refine": [(f"R={r}", {"rounds": r, "max_tokens": 256}, UNCAPPED) for r in (0, 1, 2, 4)],
    "thinking": [(f"T={t}", {"thinking_tokens": t}, UNCAPPED) for t in (256, 512, 1024, 2048)],
    "beam_search": [(f"B={b}", {"beam_width": b}, {"max_tokens": 40_000}) for b in (1, 2, 4)],
    "tree_of_thoughts": [(f"b={b}", {"breadth": b}, {"max_tokens": 40_000}) for b in (1, 2, 4)],
    "mcts": [(f"I={i}", {"iterations": i}, {"max_tokens": 40_000}) for i in (16, 32, 64)],
    "auto": [(f"budget={b}", {}, {"max_tokens": b}) for b in (500, 1000, 2000, 4000, 8000, 16000)],
}
STEP_ONLY = {"beam_search", "tree_of_thoughts", "mcts"}  # need a task with step prompts


@dataclass
class Point:
    strategy: str
    label: str
    accuracy: float
    mean_tokens: float
    problems: int


def problem_set(per_set: int) -> list[dict[str, Any]]:
    out = []
    for name in SETS:
        for item in load_dataset(name)[:per_set]:
            out.append({k: v for k, v in item.items() if k in ("task", "input", "expected")})
    return out


async def measure(
    strategy: str, params: dict[str, Any], budget: dict[str, Any], problems: list[dict[str, Any]]
) -> tuple[float, float, int]:
    provider = SimProvider()
    solved = tokens = 0
    count = 0
    for i, problem in enumerate(problems):
        if strategy in STEP_ONLY and problem["task"] != "game24":
            continue
        result = await run_offline(
            problem, strategy, params, budget, provider=provider, seed=10_000 + i
        )
        solved += result.verified
        tokens += result.tokens
        count += 1
    return solved / max(count, 1), tokens / max(count, 1), count


def plot(points: list[Point], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for strategy in LADDERS:
        pts = [p for p in points if p.strategy == strategy]
        if pts:
            ax.plot(
                [p.mean_tokens for p in pts], [p.accuracy for p in pts], marker="o", label=strategy
            )
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean tokens per problem (log)")
    ax.set_ylabel("accuracy (verified)")
    ax.set_title("Test-time scaling on the simulated model")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")


def headline(points: list[Point]) -> str:
    bon32 = next(p for p in points if p.strategy == "best_of_n" and p.label == "N=32")
    reached = [p for p in points if p.strategy == "auto" and p.accuracy >= bon32.accuracy]
    if not reached:
        best = max((p for p in points if p.strategy == "auto"), key=lambda p: p.accuracy)
        return (
            f"auto never reached best_of_n N=32's accuracy {bon32.accuracy:.3f} "
            f"(best auto: {best.accuracy:.3f} at {best.mean_tokens:.0f} tokens)"
        )
    cheapest = min(reached, key=lambda p: p.mean_tokens)
    ratio = cheapest.mean_tokens / bon32.mean_tokens
    return (
        f"HEADLINE: auto reaches best_of_n N=32's accuracy ({bon32.accuracy:.3f}) with "
        f"{cheapest.mean_tokens:.0f} mean tokens vs {bon32.mean_tokens:.0f}: "
        f"{ratio:.3f} of best_of_n's tokens (target <= 0.25) [auto {cheapest.label}, "
        f"accuracy {cheapest.accuracy:.3f}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--per-set", type=int, default=8, help="problems taken from each set")
    ap.add_argument("--out", type=Path, default=Path("bench/out/scaling.png"))
    ap.add_argument("--only", nargs="*", help="run only these strategies (plus the headline's)")
    args = ap.parse_args()
    problems = problem_set(args.per_set)
    wanted = set(args.only or LADDERS) | {"best_of_n", "auto"}
    print(f"{len(problems)} problems: {args.per_set} from each of {', '.join(SETS)}")
    print(f"{'strategy':<18} {'setting':<14} {'accuracy':>8} {'mean tokens':>12} {'n':>4}")
    points: list[Point] = []
    started = time.perf_counter()
    for strategy, ladder in LADDERS.items():
        if strategy not in wanted:
            continue
        for label, params, budget in ladder:
            acc, tokens, count = asyncio.run(measure(strategy, params, budget, problems))
            points.append(Point(strategy, label, acc, tokens, count))
            print(f"{strategy:<18} {label:<14} {acc:>8.3f} {tokens:>12.0f} {count:>4}", flush=True)
    plot(points, args.out)
    print(f"plot: {args.out}  ({time.perf_counter() - started:.0f} s)")
    print(headline(points))


if __name__ == "__main__":
    main()
