"""Model profiles: the named models a job may use, read from the models file.

Jobs name a profile (``"model": "sim"``), never a URL or a key. A profile says which
kind of server to talk to, where, which environment variable holds its API key, what a
million tokens cost and how many calls may be in flight at once. Which providers exist,
and how their profiles differ (default ``base_url`` or ``model``, fields that do not
apply), is what they registered in :mod:`ponder.llm.registry`; this module builds them
from there.

The built-in profile ``sim`` (the in-process simulated model) is always present and is
reserved: a models file may not redefine it, so ``"model": "sim"`` means the same thing
on every deployment. To tune the simulator (latency, prices), add a profile under
another name with ``provider: sim``.

Reward models are profiles too, but not chat models: ``provider: reward`` (an HTTP
endpoint speaking the contract in :mod:`ponder.llm.reward`; ``base_url`` required) and
``provider: sim-reward`` (the in-process simulated reward model). A job may not name one
as its ``model``; strategies name one as a ``reward_model`` (e.g. beam_search's ``prm``
scorer). Build them with :func:`build_reward_model`; :func:`build_provider` refuses them.
The built-in ``sim-prm`` (provider ``sim-reward``) is always present and reserved too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ponder.errors import ErrorCode, PonderError
from ponder.llm.base import Provider, RewardModel, Usage
from ponder.llm.registry import (
    ProviderSpec,
    one_of,
    provider_names,
    provider_spec,
    reward_provider_names,
)

if TYPE_CHECKING:
    from ponder.llm.limits import Limiter

SIM_PROFILE_NAME = "sim"
SIM_MODEL_ID = "sim-1"
SIM_PRM_PROFILE_NAME = "sim-prm"
SIM_REWARD_MODEL_ID = "sim-prm-1"

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"
_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ModelsFileError(PonderError, ValueError):
    """The models file is missing, is not valid YAML, or describes an invalid profile."""

    code = ErrorCode.CONFIGURATION


class ModelProfile(BaseModel):
    """One entry of the models file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=_NAME_PATTERN,
        description="What jobs call this model, e.g. `gpt-small` (letters, digits, `._:/-`).",
    )
    provider: str = Field(
        description="Chat models: `openai` (any OpenAI-compatible server), `anthropic` or "
        "`sim`. Reward models: `reward` (HTTP scoring endpoint) or `sim-reward`."
    )
    base_url: str | None = Field(
        default=None,
        description="API root, e.g. `http://127.0.0.1:9100/v1`; defaults to the vendor's.",
    )
    model: str = Field(min_length=1, description="The model id the server expects.")
    api_key_env: str | None = Field(
        default=None,
        pattern=_ENV_NAME_PATTERN,
        description="NAME of the environment variable holding the API key (not the key).",
    )
    price_in_per_mtok: float = Field(default=0.0, ge=0, description="USD per 1M prompt tokens.")
    price_out_per_mtok: float = Field(
        default=0.0, ge=0, description="USD per 1M completion tokens (reasoning included)."
    )
    max_concurrency: int = Field(default=64, ge=1, description="Calls in flight at most.")
    supports_n: bool = Field(
        default=True, description="Whether one request may ask for several samples (`n`)."
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Connect/read timeout, seconds.")
    max_retries: int = Field(default=4, ge=0, description="Retries on 408/409/429/5xx/timeouts.")
    ttft_ms: float = Field(default=0.0, ge=0, description="sim only: time to first token.")
    tokens_per_s: float = Field(
        default=0.0, ge=0, description="sim only: generation speed (0 = instant)."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" not in data:
            spec = provider_spec(str(data.get("provider")))
            if spec is not None and spec.default_model is not None:
                return {**data, "model": spec.default_model}
        return data

    @field_validator("provider", mode="before")
    @classmethod
    def _registered_provider(cls, value: Any) -> Any:
        # worded as pydantic words a Literal of the names
        names = provider_names()
        if not isinstance(value, str) or value not in names:
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": one_of(names)}
            )
        return value

    @model_validator(mode="after")
    def _fields_fit_provider(self) -> ModelProfile:
        spec, kind = self.spec, self.provider
        if spec.is_reward:
            if self.price_in_per_mtok or self.price_out_per_mtok:
                raise ValueError(
                    f"price_in_per_mtok and price_out_per_mtok do not apply to provider "
                    f"{kind!r}: reward model calls are not billed to a job's budget; remove them"
                )
            if self.ttft_ms or self.tokens_per_s:
                raise ValueError(
                    f"ttft_ms and tokens_per_s only apply to provider 'sim', not {kind!r}; "
                    "remove them from this profile"
                )
            if "supports_n" in self.model_fields_set:
                raise ValueError(
                    f"supports_n does not apply to provider {kind!r} (not a chat model)"
                )
        elif not spec.simulated_latency and (self.ttft_ms or self.tokens_per_s):
            raise ValueError(
                "ttft_ms and tokens_per_s only apply to provider 'sim'; "
                "remove them from this profile"
            )
        if spec.in_process is not None:
            if self.base_url is not None:
                raise ValueError(f"base_url does not apply to provider {kind!r} {spec.in_process}")
            if self.api_key_env is not None:
                raise ValueError(f"api_key_env does not apply to provider {kind!r}")
        elif self.base_url is not None:
            _check_http_url(self.base_url)
        elif spec.base_url_required is not None:
            raise ValueError(
                f"base_url is required for provider {kind!r}: {spec.base_url_required}"
            )
        return self

    @property
    def spec(self) -> ProviderSpec:
        """The registered provider this profile names."""
        spec = provider_spec(self.provider)
        if spec is None:  # pragma: no cover - validation admits registered names only
            raise ValueError(f"model profile {self.name!r}: unknown provider {self.provider!r}")
        return spec

    @property
    def is_reward(self) -> bool:
        """A reward model (scores answers and steps), not a chat model."""
        return self.spec.is_reward

    def cost_usd(self, usage: Usage) -> float:
        """What ``usage`` costs at this profile's prices. Reasoning tokens are part of
        ``completion_tokens`` (as OpenAI reports them), so they are not charged twice."""
        return (
            usage.prompt_tokens * self.price_in_per_mtok
            + usage.completion_tokens * self.price_out_per_mtok
        ) / 1_000_000

    @property
    def effective_base_url(self) -> str | None:
        """``base_url``, or the vendor's public API when the profile leaves it out."""
        return self.base_url or self.spec.default_base_url


def _check_http_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError("base_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL with a host")


# Built without validation, which would import the simulator's module (it registers
# provider "sim") while this module is still being imported; the fields are the ones
# validation gives them (tests/unit/test_profiles.py checks).
SIM_PROFILE = ModelProfile.model_construct(
    name=SIM_PROFILE_NAME, provider="sim", model=SIM_MODEL_ID
)
SIM_PRM_PROFILE = ModelProfile.model_construct(
    name=SIM_PRM_PROFILE_NAME, provider="sim-reward", model=SIM_REWARD_MODEL_ID
)
BUILTIN_PROFILES: dict[str, ModelProfile] = {
    SIM_PROFILE_NAME: SIM_PROFILE,
    SIM_PRM_PROFILE_NAME: SIM_PRM_PROFILE,
}


def redact_url(url: str) -> str:
    """``url`` without user:password, query or fragment: safe to show and to log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def public_view(profile: ModelProfile) -> dict[str, Any]:
    """What ``GET /v1/models`` shows every tenant about a profile: what a client needs to
    pick a model and budget for it (its name, whether it is a chat or a reward model, the
    provider's kind, capabilities and prices). Nothing about how the deployment reaches
    it: not the key or its environment variable, the base URL (internal hosts), the
    upstream model id, timeouts, retries or concurrency limits. ``kind`` says whether a
    job may name it as its ``model`` (``chat``) or a strategy as a ``reward_model``."""
    spec = profile.spec
    capabilities: dict[str, Any] = (
        {"supports_n": profile.supports_n} if spec.capabilities is None else dict(spec.capabilities)
    )
    return {
        "name": profile.name,
        "kind": "reward" if spec.is_reward else "chat",
        "provider": profile.provider,
        "capabilities": capabilities,
        "price_in_per_mtok": profile.price_in_per_mtok,
        "price_out_per_mtok": profile.price_out_per_mtok,
    }


def load_models_file(path: str | None) -> dict[str, ModelProfile]:
    """The profiles a deployment offers, by name: the built-ins ``sim`` and ``sim-prm``
    first, then the entries of the YAML file at ``path`` (``{models: [...]}``) in file
    order. ``path=None`` means no file: only the built-ins."""
    profiles: dict[str, ModelProfile] = dict(BUILTIN_PROFILES)
    if path is None:
        return profiles

    entries = _read_entries(path)
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"models file {path}: entry {index + 1}"
        if not isinstance(entry, dict):
            raise ModelsFileError(
                f"{where}: expected a mapping of fields (name, provider, model, ...), "
                f"got {_kind(entry)}"
            )
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        try:
            profile = ModelProfile.model_validate(entry)
        except ValidationError as exc:
            raise ModelsFileError(f"{where}: {_describe(exc)}") from None
        if profile.name in BUILTIN_PROFILES:
            builtin = BUILTIN_PROFILES[profile.name]
            what = "reward model" if builtin.is_reward else "model"
            raise ModelsFileError(
                f"{where}: field 'name': {profile.name!r} is the built-in simulated {what} "
                "and cannot be redefined; give this profile another name (it may still use "
                f"provider: {builtin.provider})"
            )
        if profile.name in first_seen:
            raise ModelsFileError(
                f"{where}: field 'name': {profile.name!r} is already used by entry "
                f"{first_seen[profile.name] + 1}; profile names must be unique"
            )
        first_seen[profile.name] = index
        profiles[profile.name] = profile
    return profiles


def _read_entries(path: str) -> list[Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelsFileError(f"models file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelsFileError(f"models file {path} cannot be read: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ModelsFileError(f"models file {path} is not valid YAML{at}: {problem}") from None
    if not isinstance(document, dict) or "models" not in document:
        raise ModelsFileError(
            f"models file {path}: expected a mapping with a 'models' list at the top "
            f"level, got {_kind(document)}"
        )
    unknown = sorted(str(key) for key in document if key != "models")
    if unknown:
        raise ModelsFileError(
            f"models file {path}: unknown top-level key(s) {', '.join(unknown)}; "
            "only 'models' is allowed"
        )
    entries = document["models"]
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ModelsFileError(f"models file {path}: 'models' must be a list, got {_kind(entries)}")
    return entries


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as ``field 'x': what is wrong`` without echoing input values
    (a misplaced API key must not end up in a log)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required but missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown field; the fields are " + ", ".join(ModelProfile.model_fields)
        elif error["type"] == "string_pattern_mismatch" and loc == "api_key_env":
            message = (
                "must be the NAME of an environment variable holding the key "
                "(e.g. OPENAI_API_KEY), not the key itself"
            )
        elif error["type"] == "string_pattern_mismatch" and loc == "name":
            message = "must be 1-100 letters, digits or ._:/- and start with a letter or digit"
        problems.append(f"field '{loc}': {message}" if loc else message)
    return "; ".join(problems)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (empty)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def build_provider(profile: ModelProfile, *, limiter: Limiter | None = None) -> Provider:
    """A ready-to-use provider for ``profile``. The caller owns it and must ``aclose()`` it.
    ``limiter`` (see :mod:`ponder.llm.limits`) makes ``max_concurrency`` hold across
    processes for HTTP providers. Raises ``ValueError`` for a reward model profile (it
    cannot generate text)."""
    factory = profile.spec.chat
    if factory is None:
        raise ValueError(
            f"model profile {profile.name!r} is a reward model (provider {profile.provider!r}): "
            "it scores answers and reasoning steps but cannot generate text, so it cannot be "
            "a job's model; name it as a strategy's reward_model (e.g. beam_search with "
            "scorer 'prm') and give the job a chat model"
        )
    return factory(profile, limiter=limiter)


def build_reward_model(profile: ModelProfile) -> RewardModel:
    """A ready-to-use reward model for ``profile`` (a reward model provider, such as
    ``reward`` or ``sim-reward``). The caller owns it and must ``aclose()`` it. Raises
    ``ValueError`` for a chat model."""
    factory = profile.spec.reward
    if factory is None:
        raise ValueError(
            f"model profile {profile.name!r} is a chat model (provider {profile.provider!r}), "
            f"not a reward model; reward models use provider {one_of(reward_provider_names())}"
        )
    return factory(profile)
