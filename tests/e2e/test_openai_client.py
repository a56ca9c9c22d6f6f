"""The official ``openai`` Python package as a client of ``ponder sim serve`` (a real
process): proof that the simulator is OpenAI-compatible."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from ponder.localproc import free_port, wait_http_ok
from tests.stack import PONDER

pytestmark = pytest.mark.e2e


def start_sim(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(tmp_path / f"sim-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [*PONDER, "sim", "serve", "--port", str(port), *args],
        stdout=log,
        stderr=log,
        env=dict(os.environ),
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", [proc])
    except BaseException:
        proc.kill()
        print((tmp_path / f"sim-{port}.log").read_text(errors="replace"))
        raise
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


GAME = "Use the numbers 4 9 10 13 and + - * / to make 24. End with 'Answer: <expression>'."


def test_the_official_client_lists_models_and_samples_n(
    tmp_path: Path, sims: list[subprocess.Popen[bytes]]
) -> None:
    proc, base_url = start_sim(tmp_path)
    sims.append(proc)
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=30)

    models = client.models.list()
    assert [m.id for m in models.data] == ["sim-1"]
    assert models.data[0].object == "model"

    completion = client.chat.completions.create(
        model="sim-1",
        messages=[
            {"role": "system", "content": "You solve puzzles."},
            {"role": "user", "content": GAME},
        ],
        n=3,
        max_tokens=256,
        temperature=0.9,
        seed=11,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "sim-1"
    assert [c.index for c in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert choice.message.role == "assistant"
        assert isinstance(choice.message.content, str) and choice.message.content
        assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0

    # the same seed gives the same samples
    again = client.chat.completions.create(
        model="sim-1",
        messages=[
            {"role": "system", "content": "You solve puzzles."},
            {"role": "user", "content": GAME},
        ],
        n=3,
        max_tokens=256,
        temperature=0.9,
        seed=11,
    )
    assert [c.message.content for c in again.choices] == [
        c.message.content for c in completion.choices
    ]

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found"


def test_a_server_without_n_gives_the_client_a_bad_request_error(
    tmp_path: Path, sims: list[subprocess.Popen[bytes]]
) -> None:
    proc, base_url = start_sim(tmp_path, "--no-n")
    sims.append(proc)
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=30)

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": GAME}], n=2, max_tokens=64
        )
    assert refused.value.status_code == 400
    assert refused.value.param == "n"
    assert "'n' must be 1" in refused.value.message

    one = client.chat.completions.create(
        model="sim-1", messages=[{"role": "user", "content": GAME}], n=1, max_tokens=64
    )
    assert len(one.choices) == 1
