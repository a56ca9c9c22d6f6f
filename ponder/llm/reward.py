"""Reward models: score whole answers (outcome RM) or each step of partial solutions
(process RM, PRM) without generating text.

Contract (HTTP, provider ``reward``)
------------------------------------

A reward model profile in the models file::

    - name: my-prm
      provider: reward
      base_url: http://127.0.0.1:9100     # required; no trailing /score
      model: math-shepherd-7b             # the id the server expects
      api_key_env: PRM_API_KEY            # optional: sent as "Authorization: Bearer <key>"
      timeout_s: 30                       # optional: connect/read timeout
      max_retries: 4                      # optional
      max_concurrency: 16                 # optional: requests in flight per process

Two JSON endpoints, both ``POST``, both answering ``200`` with a JSON object:

* ``{base_url}/score`` (outcome RM)::

      {"model": str, "prompt": str, "candidates": [str, ...]}
      -> {"scores": [float, ...]}            # one per candidate, same order

* ``{base_url}/score_steps`` (process RM)::

      {"model": str, "prompt": str, "paths": [[step, ...], ...]}
      -> {"scores": [[float, ...], ...]}     # one list per path, one float per step

Every score is a finite number in ``[0, 1]`` (higher is better); a step's score judges
the path *up to and including* that step. ``prompt`` is the problem as plain text (for a
task instance, the text of the prompt the strategies send the chat model). The client
sends at most :data:`MAX_ITEMS_PER_REQUEST` candidates/paths per request (larger calls
are split and the answers concatenated) and at most :data:`MAX_STEPS_PER_PATH` steps per
path; servers should accept at least that much.

Failures map to :mod:`ponder.llm.base`'s errors, as for chat providers: 408/409/429/5xx,
timeouts and dropped connections are retried under
:class:`~ponder.llm.retry.RetryPolicy` (``Retry-After`` honoured), then raise
:class:`ProviderUnavailable` (:class:`RateLimited` for 429); 401/403 raise
:class:`AuthError`; other 4xx :class:`BadRequest`; a ``2xx`` whose body is not the shape
above (not JSON, no ``scores``, a wrong count, a score outside [0, 1]) raises
:class:`ProviderUnavailable` naming what is wrong. Errors may be sent as
``{"error": {"message": ...}}``, ``{"error": str}``, ``{"detail": ...}`` or plain text.

In process (provider ``sim-reward``)
------------------------------------

:class:`~ponder.sim.reward.SimRewardModel` (the built-in ``sim-prm`` profile) answers
the same two calls with no server, so the whole service runs offline; ``ponder sim
serve`` exposes it on ``/score`` and ``/score_steps``. See its docstring for how it
scores.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from ponder.llm.base import (
    BadRequest,
    ProviderUnavailable,
    RewardModel,
)
from ponder.llm.http_client import HttpModelClient
from ponder.llm.profiles import (
    ModelProfile,
    build_reward_model,
    redact_url,
)
from ponder.llm.registry import register_reward_model
from ponder.llm.retry import RetryPolicy, Sleep

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_ITEMS_PER_REQUEST = 64
MAX_STEPS_PER_PATH = 64


RewardModelFactory = Callable[[ModelProfile], RewardModel]


class RewardModels:
    """The reward models a deployment offers, looked up by profile name; each is built on
    first use and kept (one per process, like chat providers). Calling an instance is
    the ``reward_models`` lookup a :class:`~ponder.runtime.Context` takes."""

    def __init__(
        self, profiles: Mapping[str, ModelProfile], factory: RewardModelFactory | None = None
    ) -> None:
        self._profiles = profiles
        self._factory = factory or build_reward_model
        self._built: dict[str, RewardModel] = {}

    def names(self) -> list[str]:
        return [name for name, p in self._profiles.items() if p.is_reward]

    def __call__(self, name: str) -> RewardModel:
        """The reward model named ``name``; ``ValueError`` naming the reward profiles
        that exist when ``name`` is unknown or a chat model."""
        model = self._built.get(name)
        if model is not None:
            return model
        known = ", ".join(self.names()) or "none"
        profile = self._profiles.get(name)
        if profile is None:
            raise ValueError(f"unknown reward model {name!r}; reward model profiles: {known}")
        if not profile.is_reward:
            raise ValueError(
                f"model profile {name!r} is a chat model (provider {profile.provider!r}), not a "
                f"reward model; reward model profiles: {known}"
            )
        model = self._built[name] = self._factory(profile)
        return model

    async def aclose(self) -> None:
        built, self._built = list(self._built.values()), {}
        for model in built:
            await model.aclose()


# --- the HTTP client -----------------------------------------------------------------


@register_reward_model(
    "reward",
    base_url_required="the reward server's root, e.g. http://127.0.0.1:9100 (requests go "
    "to {base_url}/score and {base_url}/score_steps)",
)
class HttpRewardModel(HttpModelClient):
    """A reward model served over HTTP per the module's contract."""

    kind = "reward model"

    def __init__(
        self,
        profile: ModelProfile,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if profile.provider != "reward" or profile.base_url is None:
            raise ValueError(
                f"profile {profile.name!r} is not an HTTP reward model (provider 'reward' "
                "with a base_url)"
            )
        super().__init__(
            profile, client=client, sleep=sleep, retry_policy=retry_policy, limiter=None
        )
        self._root = profile.base_url.rstrip("/")
        self._shown_root = redact_url(self._root)

    async def score(self, prompt: str, candidates: list[str]) -> list[float]:
        out: list[float] = []
        for chunk in _chunks(candidates):
            body = {"model": self.profile.model, "prompt": prompt, "candidates": chunk}
            payload = await self._post("score", body)
            scores = self._scores(payload, "score", len(chunk))
            out.extend(self._score_value(s, "score", f"scores[{i}]") for i, s in enumerate(scores))
        return out

    async def score_steps(self, prompt: str, paths: list[list[str]]) -> list[list[float]]:
        for index, path in enumerate(paths):
            if len(path) > MAX_STEPS_PER_PATH:
                raise BadRequest(
                    f"reward model {self.name!r}: path {index} has {len(path)} steps; at most "
                    f"{MAX_STEPS_PER_PATH} per path are sent"
                )
        out: list[list[float]] = []
        for chunk in _chunks(paths):
            body = {"model": self.profile.model, "prompt": prompt, "paths": chunk}
            payload = await self._post("score_steps", body)
            rows = self._scores(payload, "score_steps", len(chunk))
            for i, (row, path) in enumerate(zip(rows, chunk, strict=True)):
                where = f"scores[{i}]"
                if not isinstance(row, list):
                    raise self._malformed("score_steps", f"{where} is not a list")
                if len(row) != len(path):
                    raise self._malformed(
                        "score_steps",
                        f"{where} has {len(row)} score(s) for a path of {len(path)} step(s)",
                    )
                out.append(
                    [
                        self._score_value(s, "score_steps", f"{where}[{j}]")
                        for j, s in enumerate(row)
                    ]
                )
        return out

    # ---- wire ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def _post(self, endpoint: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``{base_url}/{endpoint}`` with retries; the decoded JSON body."""
        self._check_api_key()
        shown = f"{self._shown_root}/{endpoint}"
        response = await self._send(f"{self._root}/{endpoint}", shown, body, self._headers())
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise self._malformed(endpoint, "the body is not JSON") from None
        message = self._server_message(response)
        if status in (401, 403):
            raise self._auth_error(status, message, shown)
        raise self._rejected(status, message, shown)

    def _malformed(self, endpoint: str, why: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"reward model {self.name!r} at {self._shown_root}/{endpoint} sent a response that "
            f"does not follow the reward model contract ({why}); the server or a proxy in "
            "front of it may be misconfigured"
        )

    def _scores(self, payload: Any, endpoint: str, expected: int) -> list[Any]:
        if not isinstance(payload, dict):
            raise self._malformed(endpoint, "the body is not a JSON object")
        scores = payload.get("scores")
        if not isinstance(scores, list):
            raise self._malformed(endpoint, "no 'scores' list")
        if len(scores) != expected:
            what = "candidate(s)" if endpoint == "score" else "path(s)"
            raise self._malformed(
                endpoint, f"{len(scores)} score entries for {expected} {what} sent"
            )
        return scores

    def _score_value(self, value: Any, endpoint: str, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._malformed(endpoint, f"{where} is not a number")
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise self._malformed(endpoint, f"{where} = {number!r} is outside [0, 1]")
        return number


def _chunks(items: list[_T]) -> list[list[_T]]:
    return [
        items[start : start + MAX_ITEMS_PER_REQUEST]
        for start in range(0, len(items), MAX_ITEMS_PER_REQUEST)
    ]


__all__ = [
    "MAX_ITEMS_PER_REQUEST",
    "MAX_STEPS_PER_PATH",
    "HttpRewardModel",
    "RewardModelFactory",
    "RewardModels",
]
