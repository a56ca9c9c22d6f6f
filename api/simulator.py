"""The simulated model (:mod:`ponder.sim`) behind an OpenAI-compatible HTTP API
(``ponder sim serve``).

It speaks the subset of OpenAI's chat completions API that Ponder and common clients
use, so anything that can talk to OpenAI can talk to the simulator, and Ponder's own
HTTP provider can be tested end to end without a network or a paid key. Errors come
back in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.

It also serves the simulated reward model (:class:`~ponder.sim.reward.SimRewardModel`,
model id ``sim-prm-1``) on ``POST /score`` and ``POST /score_steps``, the reward model
contract of :mod:`ponder.llm.reward`: point a ``provider: reward`` profile's
``base_url`` at the server's root (e.g. ``http://127.0.0.1:9100``).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder.llm.base import (
    BadRequest,
    ContextTooLong,
    Message,
    Provider,
    ProviderError,
    RateLimited,
    RewardModel,
    SampleRequest,
)
from ponder.llm.profiles import SIM_REWARD_MODEL_ID
from ponder.llm.reward import MAX_ITEMS_PER_REQUEST, MAX_STEPS_PER_PATH
from ponder.sim.model import SimProvider
from ponder.sim.reward import SimRewardModel

_STARTED = int(time.time())
MAX_N = 128


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def to_message(self) -> Message:
        text = (
            self.content
            if isinstance(self.content, str)
            else "".join(part.text for part in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": text}


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI parameters (user, logprobs, presence_penalty, ...) are accepted and
    # ignored, as most OpenAI-compatible servers do.
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False


_Text = Annotated[str, StringConstraints(max_length=200_000)]
_Step = Annotated[str, StringConstraints(max_length=2_000)]


class ScoreRequest(BaseModel):
    """``POST /score``: outcome scores of whole candidate answers."""

    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: _Text
    candidates: list[_Text] = Field(max_length=MAX_ITEMS_PER_REQUEST)


class ScoreStepsRequest(BaseModel):
    """``POST /score_steps``: process scores, one per step of each path."""

    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: _Text
    paths: list[Annotated[list[_Step], Field(max_length=MAX_STEPS_PER_PATH)]] = Field(
        max_length=MAX_ITEMS_PER_REQUEST
    )


class OpenAIError(Exception):
    """An error to send back in OpenAI's shape."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}


def create_sim_app(
    provider: Provider,
    *,
    model_name: str = "sim-1",
    reward_model: RewardModel | None = None,
    reward_model_name: str = SIM_REWARD_MODEL_ID,
) -> FastAPI:
    """An app serving ``provider`` as the model ``model_name``, and ``reward_model``
    (default: a :class:`~ponder.sim.reward.SimRewardModel`) as the reward model
    ``reward_model_name``. The caller keeps ownership of both (the app never closes
    them)."""
    if reward_model is None:
        reward_model = SimRewardModel(model=reward_model_name)
    scorer: RewardModel = reward_model
    app = FastAPI(
        title="Ponder simulated model",
        description="OpenAI-compatible chat completions backed by Ponder's simulated model.",
    )

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(loc) or None
        where = f"'{param}': " if param else ""
        message = f"Invalid request: {where}{first.get('msg', 'invalid value')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return JSONResponse(OpenAIError(400, message, param=param).body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = OpenAIError(exc.status_code, str(exc.detail), code=None)
        return JSONResponse(error.body, status_code=exc.status_code, headers=exc.headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Chat completion requests being answered now, the most ever at once, and the
    # total: tests use them to check that concurrency limits hold across workers.
    inflight = {"now": 0, "max": 0, "total": 0}

    @app.get("/debug/inflight")
    async def debug_inflight() -> dict[str, int]:
        return {
            "inflight": inflight["now"],
            "max_inflight": inflight["max"],
            "requests": inflight["total"],
        }

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": model_name, "object": "model", "created": _STARTED, "owned_by": "ponder"}
            ],
        }

    def check_reward_model(name: str) -> None:
        if name != reward_model_name:
            raise OpenAIError(
                404,
                f"The reward model '{name}' does not exist; this server serves "
                f"'{reward_model_name}'.",
                param="model",
                code="model_not_found",
            )

    @app.post("/score")
    async def score(body: ScoreRequest) -> dict[str, Any]:
        check_reward_model(body.model)
        return {"scores": await scorer.score(body.prompt, body.candidates)}

    @app.post("/score_steps")
    async def score_steps(body: ScoreStepsRequest) -> dict[str, Any]:
        check_reward_model(body.model)
        return {"scores": await scorer.score_steps(body.prompt, body.paths)}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any]:
        if body.model != model_name:
            raise OpenAIError(
                404,
                f"The model '{body.model}' does not exist; this server serves '{model_name}'.",
                param="model",
                code="model_not_found",
            )
        if body.stream:
            raise OpenAIError(
                400,
                "Streaming is not supported by the simulator; send stream: false.",
                param="stream",
                code="unsupported_value",
            )
        if body.n > 1 and getattr(provider, "supports_n", True) is False:
            raise OpenAIError(
                400,
                "This server returns one choice per request: 'n' must be 1. "
                "Send n separate requests instead.",
                param="n",
                code="unsupported_value",
            )
        stop = [body.stop] if isinstance(body.stop, str) else body.stop
        max_tokens = body.max_completion_tokens or body.max_tokens
        fields: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
        request = SampleRequest(
            messages=[m.to_message() for m in body.messages],
            n=body.n,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=stop,
            **fields,
        )
        inflight["now"] += 1
        inflight["total"] += 1
        inflight["max"] = max(inflight["max"], inflight["now"])
        try:
            result = await provider.sample(request)
        except ContextTooLong as exc:
            raise OpenAIError(
                400, str(exc), param="messages", code="context_length_exceeded"
            ) from exc
        except BadRequest as exc:
            raise OpenAIError(400, str(exc)) from exc
        except RateLimited as exc:
            raise OpenAIError(429, str(exc), type="rate_limit_error") from exc
        except ProviderError as exc:
            raise OpenAIError(503, str(exc), type="server_error") from exc
        finally:
            inflight["now"] -= 1

        choices = []
        for index, completion in enumerate(result.completions):
            message: dict[str, Any] = {"role": "assistant", "content": completion.text}
            if completion.reasoning:
                message["reasoning_content"] = completion.reasoning
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": completion.finish_reason,
                    "logprobs": None,
                }
            )
        usage = result.usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            },
        }

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 9100,
    *,
    ttft_ms: float = 0.0,
    tokens_per_s: float = 0.0,
    supports_n: bool = True,
    model_name: str = "sim-1",
) -> None:
    """Run the simulator as an HTTP server until interrupted (``ponder sim serve``):
    chat completions under ``/v1`` and the simulated reward model on ``/score`` and
    ``/score_steps``."""
    import uvicorn

    provider = SimProvider("sim", ttft_ms=ttft_ms, tokens_per_s=tokens_per_s, supports_n=supports_n)
    uvicorn.run(create_sim_app(provider, model_name=model_name), host=host, port=port)
