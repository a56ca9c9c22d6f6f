"""Calibration of the simulated model on arithmetic word problems: single-sample
accuracy by problem depth and ``max_tokens``, through the real provider path.
``python -m ponder.sim.calibrate`` prints the table quoted in
:mod:`ponder.sim.skills.arithmetic`."""

from __future__ import annotations

import random

from ponder.families.arithmetic import format_prompt, make_problem
from ponder.families.arithmetic import parse_answer as read_answer
from ponder.llm.base import SampleRequest
from ponder.sim.model import generate


def calibrate(
    depths: tuple[int, ...] = (1, 2, 4, 8, 12),
    budgets: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
    problems: int = 40,
    samples: int = 10,
    temperature: float = 0.8,
) -> dict[tuple[int, int], float]:
    """Single-sample accuracy by (depth, max_tokens), through the real provider path."""
    table: dict[tuple[int, int], float] = {}
    for depth in depths:
        rng = random.Random(f"calibrate-{depth}")
        cases = [make_problem(depth, rng) for _ in range(problems)]
        for budget in budgets:
            right = 0
            for i, (question, answer) in enumerate(cases):
                request = SampleRequest(
                    [{"role": "user", "content": format_prompt(question)}],
                    n=samples,
                    max_tokens=budget,
                    temperature=temperature,
                    seed=i,
                )
                for completion in generate(request):
                    right += read_answer(completion.text) == str(answer)
            table[(depth, budget)] = right / (problems * samples)
    return table


if __name__ == "__main__":
    budgets = (64, 128, 256, 512, 1024, 2048)
    results = calibrate(budgets=budgets)
    print("depth \\ max_tokens " + "".join(f"{b:>6}" for b in budgets))
    for depth in sorted({d for d, _ in results}):
        cells = "".join(f"{results[(depth, b)]:6.2f}" for b in budgets)
        print(f"{depth:>18} {cells}")
