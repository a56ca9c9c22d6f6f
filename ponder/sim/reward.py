"""The simulated reward model (provider ``sim-reward``, the built-in ``sim-prm``
profile): the reward model contract of :mod:`ponder.llm.reward` answered in process, with
no server, so the whole service runs offline. ``ponder sim serve`` also exposes it on
``/score`` and ``/score_steps`` (see :mod:`api.simulator`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from fractions import Fraction

from ponder.families.game24 import heuristic, parse_answer, parse_prompt, parse_step
from ponder.llm.profiles import SIM_PRM_PROFILE_NAME, SIM_REWARD_MODEL_ID, ModelProfile
from ponder.llm.registry import register_reward_model
from ponder.verifiers.game24 import check_expression


class SimRewardModel:
    """An in-process reward model for offline runs (the built-in ``sim-prm``).

    It knows the Game of 24 (the puzzle is read back out of the prompt) and judges with
    no answer key and no search:

    * ``score_steps``: each step is replayed on the numbers left; a step that does not
      apply (an operand not left, wrong arithmetic, a wrong ``left`` list) scores 0, and
      so does every step after it. A valid step scores the task heuristic of the numbers
      it leaves (:func:`ponder.families.game24.heuristic`: exact with one or two numbers
      left, a glance otherwise) plus Gaussian noise (sd ``noise``), clipped to [0, 1].
    * ``score``: the expression in a candidate (after ``Answer:``, else the whole text)
      is checked like the game24 verifier scores it (1 for 24, up to 0.5 the closer a
      well-formed expression lands), squeezed into [0.05, 0.95], plus noise.

    Prompts it does not recognize get 0.5 plus noise. The noise is seeded from the
    prompt and the path prefix (or the candidate) only, so the same input always gets
    the same scores, and a step's score does not depend on what else is in the batch.
    """

    def __init__(
        self,
        name: str = SIM_PRM_PROFILE_NAME,
        *,
        model: str = SIM_REWARD_MODEL_ID,
        noise: float = 0.05,
    ) -> None:
        self.name = name
        self.model = model
        self.noise = noise

    async def aclose(self) -> None:
        pass

    async def score(self, prompt: str, candidates: list[str]) -> list[float]:
        numbers = parse_prompt(prompt)
        out = []
        for candidate in candidates:
            base = 0.5
            if numbers is not None:
                expr = parse_answer(candidate) or candidate.strip()
                base = 0.05 + 0.9 * check_expression(numbers, expr[:200]).score
            out.append(self._noisy(base, "score", prompt, candidate))
        return out

    async def score_steps(self, prompt: str, paths: list[list[str]]) -> list[list[float]]:
        numbers = parse_prompt(prompt)
        out: list[list[float]] = []
        for path in paths:
            row: list[float] = []
            left: Sequence[Fraction] | None = (
                None if numbers is None else [Fraction(n) for n in numbers]
            )
            for depth in range(len(path)):
                tag = (prompt, *path[: depth + 1])
                if numbers is None:
                    row.append(self._noisy(0.5, "step", *tag))
                    continue
                step = None if left is None else parse_step(path[depth], left)
                if step is None:
                    left = None  # the path went wrong here: nothing after it counts
                    row.append(0.0)
                    continue
                left = step.left
                row.append(self._noisy(heuristic(left), "step", *tag))
            out.append(row)
        return out

    def _noisy(self, base: float, *tag: str) -> float:
        digest = hashlib.sha256("\x1f".join((self.model, *tag)).encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        value = base + (rng.gauss(0.0, self.noise) if self.noise > 0 else 0.0)
        return round(min(max(value, 0.0), 1.0), 6)


@register_reward_model(
    "sim-reward",
    default_model=SIM_REWARD_MODEL_ID,
    in_process="(the in-process simulated reward model); to reach one over HTTP use "
    "provider 'reward' with its base_url",
)
def build_sim_reward_model(profile: ModelProfile) -> SimRewardModel:
    """The simulated reward model for a ``provider: sim-reward`` profile."""
    return SimRewardModel(profile.name, model=profile.model)


__all__ = ["SimRewardModel", "build_sim_reward_model"]
