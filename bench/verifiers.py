"""Sandboxed ``python_tests`` verdicts per second, and the sandbox's overhead; then
the ``regex`` verifier's RE2 against Python's ``re`` on catastrophic patterns.

Runs N verdicts with concurrency 2 (two cores) through :class:`PythonTestsVerifier`
(isolated sandbox: namespaces, rlimits, fresh uid, tmpfs), and, side by side in the same
run, the very same harness, candidate and tests in a plain unsandboxed subprocess
(``python -I -S -B main.py`` in a temporary directory). Prints both rates and the ratio.
Target: ≥ 20 sandboxed verdicts/s. Then, for patterns that backtrack exponentially
(``(a|aa)+$``, ``(a|a)*$``, ``(.*){25}x``, ``(\\w+\\s?)+$``, ``(x+x+)+y``), the time RE2
takes on a 10 000-character near miss beside Python's ``re`` on the same (in a child
process, stopped after ``--re-limit`` seconds). Ends with ``bench/hostile.py``'s figures
(hostile answers and request bodies). Prints figures; asserts nothing about timing.

    .venv/bin/python bench/verifiers.py [-n 200] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hostile import figures as hostile_figures
from ponder.sandbox import REPORT_FILE, SandboxResult, interpreter, isolation_status
from ponder.verifiers.base import Verdict
from ponder.verifiers.python_tests import PythonTestsVerifier, extract_code
from ponder.verifiers.regex import MAX_ANSWER_CHARS, RegexVerifier

TESTS = """
def test_sorted():
    assert my_sort([3, 1, 2]) == [1, 2, 3]

def test_empty():
    assert my_sort([]) == []

def test_dupes():
    assert my_sort([2, 2, 1]) == [1, 2, 2]

def test_many():
    import random
    xs = [random.randint(0, 1000) for _ in range(1000)]
    assert my_sort(xs) == sorted(xs)
"""
ANSWER = """Here you go:

```python
def my_sort(xs):
    if len(xs) <= 1:
        return list(xs)
    pivot = xs[len(xs) // 2]
    return (my_sort([x for x in xs if x < pivot]) + [x for x in xs if x == pivot]
            + my_sort([x for x in xs if x > pivot]))
```
"""


async def plain_verdict(verifier: PythonTestsVerifier, code: str) -> Verdict:
    """The same program, unsandboxed: a plain subprocess in a temporary directory."""
    nonce = secrets.token_hex(16)
    main, files, argv = verifier.program(code, nonce)
    workdir = tempfile.mkdtemp(prefix="ponder-bench-")
    start = time.monotonic()
    try:
        for name, text in {**files, "main.py": main}.items():
            Path(workdir, name).write_text(text)
        proc = await asyncio.create_subprocess_exec(
            interpreter(),
            "-I",
            "-S",
            "-B",
            "main.py",
            *argv,
            cwd=workdir,
            env={},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        report_path = Path(workdir, REPORT_FILE)
        report = report_path.read_text() if report_path.exists() else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = SandboxResult(
        exit_code=proc.returncode,
        timed_out=False,
        killed_by=None,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        truncated=False,
        wall_s=time.monotonic() - start,
        isolated=True,
        report=report,
    )
    return verifier.check_result(result, nonce)


N = MAX_ANSWER_CHARS
CATASTROPHIC = [  # pattern, a near miss as long as an answer may be
    (r"(a|aa)+$", "a" * (N - 1) + "b"),
    (r"(a|a)*$", "a" * (N - 1) + "b"),
    (r"(.*){25}x", "a" * N),
    (r"(\w+\s?)+$", "ab " * (N // 3) + "!"),
    (r"(x+x+)+y", "x" * N),
]


def python_re_seconds(pattern: str, text: str, limit: float) -> float | None:
    """Python's ``re.fullmatch`` in a child process; None when stopped at ``limit``."""
    code = "import re, sys; re.fullmatch(sys.argv[1], sys.stdin.read())"
    start = time.monotonic()
    try:
        subprocess.run([sys.executable, "-c", code, pattern], input=text, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - start


def regex_figures(limit: float) -> None:
    print(f"regex on a {N}-character near miss: RE2 (the verifier) vs Python's re")
    for pattern, text in CATASTROPHIC:
        verifier = RegexVerifier(pattern)
        start = time.perf_counter()
        for _ in range(10):
            matched = verifier.matches(text)
        re2_ms = (time.perf_counter() - start) / 10 * 1000
        python = python_re_seconds(pattern, text, limit)
        python_text = f"stopped after {limit:g} s" if python is None else f"{python:.2f} s"
        print(f"  {pattern:14} RE2 {re2_ms:6.2f} ms (match: {matched}); Python re: {python_text}")


async def measure(
    label: str, one: Callable[[], Awaitable[Verdict]], n: int, concurrency: int
) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def timed() -> Verdict:
        async with sem:
            t = time.monotonic()
            verdict = await one()
            latencies.append(time.monotonic() - t)
            return verdict

    start = time.monotonic()
    verdicts = await asyncio.gather(*(timed() for _ in range(n)))
    elapsed = time.monotonic() - start
    bad = [v for v in verdicts if not v.passed]
    if bad:
        print(f"  {label}: {len(bad)} verdicts did not pass, e.g. {bad[0].feedback}")
    return n / elapsed, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="verdicts per measurement")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each")
    parser.add_argument(
        "--re-limit", type=float, default=2.0, help="seconds before Python's re is stopped"
    )
    args = parser.parse_args()

    status = isolation_status()
    print(f"cores: {os.cpu_count()}; isolation: {status.mode or 'UNAVAILABLE: ' + status.reason}")
    if not status.available:
        print("the sandboxed figures need isolation; skipping them")
        regex_figures(args.re_limit)
        hostile_figures(repeat=5)
        return
    verifier = PythonTestsVerifier(TESTS, timeout_s=5, memory_mb=256)
    code = extract_code(ANSWER)

    async def sandboxed() -> Verdict:
        return await verifier.check(ANSWER)

    async def plain() -> Verdict:
        return await plain_verdict(verifier, code)

    await measure("warm-up", sandboxed, 10, args.concurrency)
    await measure("warm-up", plain, 10, args.concurrency)
    rates: dict[str, list[float]] = {"sandboxed": [], "plain": []}
    lat: dict[str, list[float]] = {"sandboxed": [], "plain": []}
    for _ in range(args.rounds):  # alternate, so drift in machine load hits both alike
        for label, fn in (("sandboxed", sandboxed), ("plain", plain)):
            rate, latencies = await measure(label, fn, args.n, args.concurrency)
            rates[label].append(rate)
            lat[label].extend(latencies)

    print(f"{args.n} verdicts × {args.rounds} rounds, concurrency {args.concurrency}")
    for label in ("sandboxed", "plain"):
        p50 = statistics.median(lat[label]) * 1000
        p95 = statistics.quantiles(lat[label], n=20)[-1] * 1000
        print(
            f"  {label:9}: {statistics.mean(rates[label]):6.1f} verdicts/s "
            f"(rounds: {', '.join(f'{r:.1f}' for r in rates[label])}); "
            f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        )
    sandboxed_rate = statistics.mean(rates["sandboxed"])
    plain_rate = statistics.mean(rates["plain"])
    overhead_ms = (statistics.median(lat["sandboxed"]) - statistics.median(lat["plain"])) * 1000
    print(
        f"  sandbox / plain throughput: {sandboxed_rate / plain_rate:.2f}× "
        f"(sandbox overhead ≈ {overhead_ms:.0f} ms per verdict); target ≥ 20 verdicts/s: "
        + ("met" if sandboxed_rate >= 20 else "NOT met")
    )
    regex_figures(args.re_limit)
    hostile_figures(repeat=5)


if __name__ == "__main__":
    asyncio.run(main())
