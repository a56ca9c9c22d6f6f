"""The README's examples, run as written against a live stack (api, worker, beat's
work done by the worker's reaper): every shell and Python block marked
``<!-- readme-test -->`` runs, in order, in one bash session (a Python block as a
``python3`` script of its own), so a variable set in one shell block is there in the
next, exactly as for a reader following the README top to bottom. A command that
fails, an HTTP answer that is not 2xx, or a Python example that raises fails the test
with the block's line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.localproc import free_port
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = "<!-- readme-test -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
# the address the README's examples use for the API
README_API = "http://127.0.0.1:8000"


SHELL = ("sh", "bash")
PYTHON_END = "PONDER_README_PYTHON_END"


def marked_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, shell code)`` of every fenced shell or Python block right after the
    marker; a Python block becomes a ``python3`` command running it."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() != MARK:
            continue
        lang, code = match.group(1), match.group(2)
        assert lang in (*SHELL, "python"), f"a marked block must be shell or Python, not {lang!r}"
        line = text.count("\n", 0, match.start()) + 2
        if lang == "python":
            assert PYTHON_END not in code
            code = f"python3 - <<'{PYTHON_END}'\n{code}{PYTHON_END}\n"
        blocks.append((line, code))
    return blocks


def test_the_marker_finds_the_examples() -> None:
    blocks = marked_blocks(README.read_text())
    assert len(blocks) >= 10
    assert all(code.strip() for _, code in blocks)


def script(blocks: list[tuple[int, str]], api_url: str) -> str:
    # curl fails on an HTTP error answer (printing its body), so a broken example fails
    parts = [
        "set -eo pipefail",
        'curl() { command curl --fail-with-body --max-time 120 "$@"; }',
    ]
    for line, code in blocks:
        parts.append(f"echo '>>> README.md line {line}' >&2")
        parts.append(code.replace(README_API, api_url))
    return "\n".join(parts) + "\n"


@pytest.mark.e2e
def test_readme_examples_run_as_written(stack: Stack) -> None:
    blocks = marked_blocks(README.read_text())
    key = stack.new_key("readme")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **stack.env,
        "PONDER_API_KEY": key,
        "PONDER_API_URL": stack.api_url,
        "RECEIVER_PORT": str(free_port()),
        "PATH": f"{bin_dir}{os.pathsep}{stack.env.get('PATH', '')}",
    }
    result = subprocess.run(
        ["bash", "-c", script(blocks, stack.api_url)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = [line for line in result.stderr.splitlines() if line.startswith(">>> ")][-1:]
    assert result.returncode == 0, (
        f"the README example at {last} failed (exit {result.returncode}):\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    out = result.stdout
    assert "submitted job " in out
    assert re.search(r"verified job\.completed for [0-9a-f-]{36}: completed", out), out[-2000:]
    # the Python client's example
    assert re.search(r"^job [0-9a-f-]{36}: completed \(", out, re.M), out[-2000:]
    assert re.search(r"^batch [0-9a-f-]{36}: \d/2 verified$", out, re.M), out[-2000:]
    assert re.search(r"^schedule nightly-rerun: 1 past run\(s\), next at 20", out, re.M), out
    assert re.search(r"^404 .*no-such-job", out, re.M), out[-2000:]
    # the OpenAI SDK's example
    assert re.search(r"^answer: \S", out, re.M), out[-2000:]
    assert re.search(r"^tokens spent: [1-9]\d* job: [0-9a-f-]{36}$", out, re.M), out[-2000:]
    assert re.search(r"^  progress: candidate 0: ", out, re.M), out[-2000:]
    assert re.search(r"^(completed|incomplete) \S", out, re.M), out[-2000:]
