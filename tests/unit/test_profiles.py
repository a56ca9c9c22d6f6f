"""Model profiles: the models file, its error messages, the public view, costs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ponder.llm.base import Usage
from ponder.llm.openai_compat import OpenAICompatProvider
from ponder.llm.profiles import (
    ModelProfile,
    ModelsFileError,
    build_provider,
    load_models_file,
    public_view,
)
from ponder.sim.model import SimProvider

DESIGN_EXAMPLE = """\
models:
  - name: sim-http
    provider: openai          # openai (any OpenAI-compatible server) | anthropic | sim
    base_url: http://127.0.0.1:9100/v1
    model: sim-1
    api_key_env: null         # name of the env var holding the key
    price_in_per_mtok: 0.0
    price_out_per_mtok: 0.0
    max_concurrency: 64
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ModelsFileError) as caught:
        load_models_file(path)
    message = str(caught.value)
    assert path in message  # every error names the file
    return message


def test_without_a_file_only_the_builtins_are_offered() -> None:
    profiles = load_models_file(None)
    assert list(profiles) == ["sim", "sim-prm"]
    assert profiles["sim"].provider == "sim"
    assert profiles["sim-prm"].provider == "sim-reward"  # the simulated PRM


def test_the_design_example_parses(tmp_path: Path) -> None:
    profiles = load_models_file(write(tmp_path, DESIGN_EXAMPLE))
    assert list(profiles) == ["sim", "sim-prm", "sim-http"]
    profile = profiles["sim-http"]
    assert profile.provider == "openai"
    assert profile.base_url == "http://127.0.0.1:9100/v1"
    assert profile.model == "sim-1"
    assert profile.api_key_env is None
    assert (profile.max_concurrency, profile.supports_n) == (64, True)
    assert (profile.timeout_s, profile.max_retries) == (120.0, 4)


def test_defaults_and_sim_profiles_under_other_names(tmp_path: Path) -> None:
    text = """\
models:
  - name: gpt-small
    provider: openai
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
    price_in_per_mtok: 0.15
    price_out_per_mtok: 0.6
  - name: sim-slow
    provider: sim
    ttft_ms: 200
    tokens_per_s: 50
    supports_n: false
"""
    profiles = load_models_file(write(tmp_path, text))
    assert list(profiles) == ["sim", "sim-prm", "gpt-small", "sim-slow"]
    assert profiles["gpt-small"].effective_base_url == "https://api.openai.com/v1"
    slow = profiles["sim-slow"]
    assert (slow.model, slow.ttft_ms, slow.tokens_per_s, slow.supports_n) == (
        "sim-1",
        200,
        50,
        False,
    )


def test_empty_models_list_is_allowed(tmp_path: Path) -> None:
    assert list(load_models_file(write(tmp_path, "models: []\n"))) == ["sim", "sim-prm"]
    assert list(load_models_file(write(tmp_path, "models:\n"))) == ["sim", "sim-prm"]


def test_sim_cannot_be_redefined(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        "models:\n  - name: sim\n    provider: openai\n    base_url: http://x/v1\n    model: m\n",
    )
    assert "entry 1 ('sim')" in message
    assert "field 'name'" in message
    assert "cannot be redefined" in message


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ModelsFileError, match="does not exist") as caught:
        load_models_file(path)
    assert path in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "models:\n  - name: a\n    provider: [openai\n")
    assert "not valid YAML" in message
    assert "line" in message


@pytest.mark.parametrize(
    ("text", "wording"),
    [
        ("", "expected a mapping with a 'models' list"),
        ("- name: a\n", "expected a mapping with a 'models' list"),
        ("models: {name: a}\n", "'models' must be a list"),
        ("models: []\nmodel: []\n", "unknown top-level key(s) model"),
        ("models:\n  - just-a-string\n", "entry 1: expected a mapping of fields"),
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, wording: str) -> None:
    assert wording in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("entry", "field", "wording"),
    [
        (
            "provider: azure\n    model: m",
            "provider",
            "'openai', 'anthropic', 'sim', 'reward' or 'sim-reward'",
        ),
        ("provider: openai", "model", "required but missing"),
        (
            "provider: openai\n    model: m\n    max_concurrency: 0",
            "max_concurrency",
            "greater than or equal to 1",
        ),
        (
            "provider: openai\n    model: m\n    price_in_per_mtok: -1",
            "price_in_per_mtok",
            "greater than or equal to 0",
        ),
        ("provider: openai\n    model: m\n    temprature: 1", "temprature", "unknown field"),
        ("provider: openai\n    model: m\n    api_key_env: sk-abcdef", "api_key_env", "NAME"),
    ],
)
def test_entry_errors_name_the_entry_and_field(
    tmp_path: Path, entry: str, field: str, wording: str
) -> None:
    text = f"models:\n  - name: ok\n    provider: sim\n  - name: broken\n    {entry}\n"
    message = load_error(tmp_path, text)
    assert "entry 2 ('broken')" in message
    assert f"field '{field}'" in message
    assert wording in message


def test_a_key_pasted_into_api_key_env_is_not_echoed(tmp_path: Path) -> None:
    key = "sk-live-abcdefghijklmnop"
    text = f"models:\n  - name: a\n    provider: openai\n    model: m\n    api_key_env: {key}\n"
    assert key not in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("entry", "wording"),
    [
        ("provider: sim\n    base_url: http://x/v1", "base_url does not apply to provider 'sim'"),
        ("provider: sim\n    api_key_env: KEY", "api_key_env does not apply"),
        ("provider: openai\n    model: m\n    ttft_ms: 5", "only apply to provider 'sim'"),
        ("provider: openai\n    model: m\n    base_url: ftp://x", "http:// or https://"),
        ("provider: openai\n    model: m\n    base_url: not a url", "http:// or https://"),
    ],
)
def test_fields_that_do_not_fit_the_provider(tmp_path: Path, entry: str, wording: str) -> None:
    message = load_error(tmp_path, f"models:\n  - name: a\n    {entry}\n")
    assert "entry 1 ('a')" in message
    assert wording in message


def test_duplicate_names(tmp_path: Path) -> None:
    text = "models:\n  - {name: a, provider: sim}\n  - {name: a, provider: sim}\n"
    message = load_error(tmp_path, text)
    assert "entry 2 ('a')" in message and "entry 1" in message and "unique" in message


def test_cost_charges_prompt_and_completion_tokens() -> None:
    profile = ModelProfile(
        name="p", provider="openai", model="m", price_in_per_mtok=2.0, price_out_per_mtok=8.0
    )
    usage = Usage(prompt_tokens=1_000, completion_tokens=500, reasoning_tokens=400)
    # reasoning tokens are already inside completion_tokens
    assert profile.cost_usd(usage) == pytest.approx((1_000 * 2.0 + 500 * 8.0) / 1e6)
    assert load_models_file(None)["sim"].cost_usd(usage) == 0.0


def test_public_view_hides_secrets_and_internals() -> None:
    profile = ModelProfile(
        name="vendor",
        provider="openai",
        base_url="https://alice:s3cret@llm.example.com:8443/v1?api-key=k3y#frag",
        model="m-large",
        api_key_env="VENDOR_API_KEY",
        price_in_per_mtok=1.0,
        price_out_per_mtok=3.0,
        max_concurrency=8,
        supports_n=False,
    )
    view = public_view(profile)
    assert view == {
        "name": "vendor",
        "kind": "chat",
        "provider": "openai",
        "capabilities": {"supports_n": False},
        "price_in_per_mtok": 1.0,
        "price_out_per_mtok": 3.0,
    }
    flat = repr(view)
    # no secrets, and nothing about how the deployment reaches the model: its host, the
    # upstream model id, its limits
    for internal in ("alice", "s3cret", "k3y", "VENDOR_API_KEY", "llm.example.com", "m-large"):
        assert internal not in flat
    assert "base_url" not in public_view(load_models_file(None)["sim"])


def test_build_provider_picks_the_implementation() -> None:
    openai = ModelProfile(name="o", provider="openai", base_url="http://x/v1", model="m")
    provider = build_provider(openai)
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.name == "o"
    asyncio.run(provider.aclose())

    from ponder.llm.anthropic import AnthropicProvider

    anthropic = ModelProfile(name="a", provider="anthropic", model="claude")
    built = build_provider(anthropic)
    assert isinstance(built, AnthropicProvider)
    asyncio.run(built.aclose())


def test_build_provider_for_sim_uses_the_profile_latency() -> None:
    profile = ModelProfile(
        name="sim-slow", provider="sim", model="sim-1", ttft_ms=5, tokens_per_s=80, supports_n=False
    )
    provider = build_provider(profile)
    assert isinstance(provider, SimProvider)
    assert provider.name == "sim-slow"
    assert (provider.ttft_ms, provider.tokens_per_s, provider.supports_n) == (5, 80, False)
    asyncio.run(provider.aclose())


def test_builtin_profiles_are_what_validation_makes() -> None:
    # they are built without validation (see ponder.llm.profiles)
    for profile in load_models_file(None).values():
        again = ModelProfile.model_validate(profile.model_dump(include={"name", "provider"}))
        assert again == profile
        assert again.model_fields_set == profile.model_fields_set


def test_a_provider_is_one_decorated_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.llm import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    assert registry.provider_names() == ["openai", "anthropic", "sim", "reward", "sim-reward"]

    @registry.register_provider("echo", default_model="echo-1", in_process="(in process)")
    def build_echo(profile: ModelProfile, *, limiter: object = None) -> SimProvider:
        return SimProvider(profile.name)

    profile = ModelProfile(name="e", provider="echo")
    assert profile.model == "echo-1" and not profile.is_reward
    provider = build_provider(profile)
    assert isinstance(provider, SimProvider) and provider.name == "e"
    with pytest.raises(ValueError, match=r"base_url does not apply to provider 'echo' \(in"):
        ModelProfile(name="e", provider="echo", base_url="http://x")
    with pytest.raises(ValueError, match="'sim', 'reward', 'sim-reward' or 'echo'"):
        ModelProfile(name="e", provider="nope", model="m")
