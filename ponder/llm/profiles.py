"""Model profiles: the named models a job may use, read from the models file.

Jobs name a profile (``"model": "sim"``), never a URL or a key. A profile says which
kind of server to talk to, where, which environment variable holds its API key, what a
million tokens cost and how many calls may be in flight at once.

The built-in profile ``sim`` (the in-process simulated model) is always present and is
reserved: a models file may not redefine it, so ``"model": "sim"`` means the same thing
on every deployment. To tune the simulator (latency, prices), add a profile under
another name with ``provider: sim``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ponder.llm.base import Provider, Usage

ProviderKind = Literal["openai", "anthropic", "sim"]

SIM_PROFILE_NAME = "sim"
SIM_MODEL_ID = "sim-1"
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"
_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ModelsFileError(ValueError):
    """The models file is missing, is not valid YAML, or describes an invalid profile."""


class ModelProfile(BaseModel):
    """One entry of the models file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=_NAME_PATTERN,
        description="What jobs call this model, e.g. `gpt-small` (letters, digits, `._:/-`).",
    )
    provider: ProviderKind = Field(
        description="`openai` (any OpenAI-compatible server), `anthropic` or `sim`."
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
    def _sim_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "sim" and "model" not in data:
            return {**data, "model": SIM_MODEL_ID}
        return data

    @model_validator(mode="after")
    def _fields_fit_provider(self) -> ModelProfile:
        if self.provider == "sim":
            if self.base_url is not None:
                raise ValueError(
                    "base_url does not apply to provider 'sim' (the in-process simulator); "
                    "to reach a simulator over HTTP use provider 'openai' with its base_url"
                )
            if self.api_key_env is not None:
                raise ValueError("api_key_env does not apply to provider 'sim'")
        else:
            if self.ttft_ms or self.tokens_per_s:
                raise ValueError(
                    "ttft_ms and tokens_per_s only apply to provider 'sim'; "
                    "remove them from this profile"
                )
            if self.base_url is not None:
                _check_http_url(self.base_url)
        return self

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
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider)


def _check_http_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError("base_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL with a host")


SIM_PROFILE = ModelProfile(name=SIM_PROFILE_NAME, provider="sim", model=SIM_MODEL_ID)


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
    """What ``GET /v1/models`` shows about a profile: never the key, the name of its
    environment variable, or credentials embedded in the URL."""
    base_url = profile.effective_base_url
    return {
        "name": profile.name,
        "provider": profile.provider,
        "model": profile.model,
        "base_url": redact_url(base_url) if base_url else None,
        "capabilities": {"supports_n": profile.supports_n},
        "price_in_per_mtok": profile.price_in_per_mtok,
        "price_out_per_mtok": profile.price_out_per_mtok,
        "max_concurrency": profile.max_concurrency,
    }


def load_models_file(path: str | None) -> dict[str, ModelProfile]:
    """The profiles a deployment offers, by name: the built-in ``sim`` first, then the
    entries of the YAML file at ``path`` (``{models: [...]}``) in file order.
    ``path=None`` means no file: only ``sim``."""
    profiles: dict[str, ModelProfile] = {SIM_PROFILE_NAME: SIM_PROFILE}
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
        if profile.name == SIM_PROFILE_NAME:
            raise ModelsFileError(
                f"{where}: field 'name': 'sim' is the built-in simulated model and cannot "
                "be redefined; give this profile another name (it may still use "
                "provider: sim)"
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


def build_provider(profile: ModelProfile) -> Provider:
    """A ready-to-use provider for ``profile``. The caller owns it and must ``aclose()`` it."""
    if profile.provider == "sim":
        from ponder.llm.sim.model import SimProvider

        return SimProvider(
            profile.name,
            ttft_ms=profile.ttft_ms,
            tokens_per_s=profile.tokens_per_s,
            supports_n=profile.supports_n,
        )
    if profile.provider == "openai":
        from ponder.llm.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(profile)
    raise NotImplementedError(
        f"model profile {profile.name!r} uses provider 'anthropic', which this version of "
        "Ponder does not support yet; use an OpenAI-compatible endpoint (provider: openai) "
        "instead"
    )
