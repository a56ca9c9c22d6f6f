"""``ponder up``: the whole stack on this machine, in one terminal.

It migrates the configured database, then runs ``ponder api``, ``ponder worker``,
``ponder beat`` and, with ``--sim``, ``ponder sim serve`` as child processes, each
line of their output prefixed with the process's name (coloured on a terminal). Ctrl-C
or SIGTERM stops them all the way ``docker compose stop`` would: SIGTERM to each, so
workers hand their jobs back after the calls in flight, then SIGKILL to any process
still running after ``stop_seconds``. If one of them dies on its own, the others are
stopped too and ``ponder up`` exits with an error, so a broken stack is never left
half-running. For production, run the processes under a supervisor instead (README).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TextIO

from ponder.localproc import wait_http_ok

# ANSI colours for the prefixes, in turn
_COLOURS = ("36", "33", "35", "32", "34", "31")


@dataclass(frozen=True)
class Service:
    name: str
    args: tuple[str, ...]  # arguments of ``python -m ponder``


@dataclass
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    processes: int | None = None
    max_jobs: int | None = None
    sim: bool = False
    sim_port: int = 9100
    allow_private_webhooks: bool = False
    stop_seconds: float = 30.0
    env: dict[str, str] = field(default_factory=dict)


def services(options: UpOptions) -> list[Service]:
    """What ``ponder up`` starts, in order."""
    worker = ["worker"]
    if options.processes is not None:
        worker += ["--processes", str(options.processes)]
    if options.max_jobs is not None:
        worker += ["--max-jobs", str(options.max_jobs)]
    out = [
        Service("api", ("api", "--host", options.host, "--port", str(options.port))),
        Service("worker", tuple(worker)),
        Service("beat", ("beat",)),
    ]
    if options.sim:
        out.append(
            Service("sim", ("sim", "serve", "--host", "127.0.0.1", "--port", str(options.sim_port)))
        )
    return out


def _die_with_parent() -> None:
    # a child of `ponder up` killed with it (kill -9 included) takes nothing with it
    # but itself; its own children (worker processes) follow through their supervisor
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Printer:
    """Copies a child's output to ours, a line at a time, behind its name."""

    def __init__(self, out: TextIO, colour: bool) -> None:
        self._out = out
        self._colour = colour
        self._lock = threading.Lock()
        self._colours = itertools.cycle(_COLOURS)

    def prefix_for(self, name: str) -> str:
        tag = f"{name:<6} |"
        return f"\x1b[{next(self._colours)}m{tag}\x1b[0m" if self._colour else tag

    def line(self, prefix: str, text: str) -> None:
        with self._lock:
            self._out.write(f"{prefix} {text}\n")
            self._out.flush()

    def follow(self, prefix: str, stream: IO[bytes]) -> threading.Thread:
        def copy() -> None:
            for raw in iter(stream.readline, b""):
                self.line(prefix, raw.decode(errors="replace").rstrip("\n"))

        thread = threading.Thread(target=copy, daemon=True)
        thread.start()
        return thread


def run_up(
    options: UpOptions,
    *,
    out: TextIO = sys.stdout,
    migrate: Callable[[str], str] | None = None,
) -> int:
    """Run the stack until Ctrl-C, SIGTERM or a process dying; the exit status."""
    env = {**os.environ, **options.env}
    if options.allow_private_webhooks:
        env["PONDER_WEBHOOK_ALLOW_PRIVATE"] = "true"
    colour = out.isatty() and "NO_COLOR" not in env
    printer = _Printer(out, colour)
    me = printer.prefix_for("up")

    warn = "\x1b[1;31m" if colour else ""
    reset = "\x1b[0m" if colour else ""
    if env.get("PONDER_WEBHOOK_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes", "on"):
        printer.line(
            me,
            f"{warn}DEVELOPMENT MODE: webhooks may go to private and loopback addresses "
            f"(PONDER_WEBHOOK_ALLOW_PRIVATE=true). Never run a shared server like this.{reset}",
        )
    if migrate is not None:
        printer.line(me, migrate(env.get("PONDER_DATABASE_URL", "")))

    stopping = threading.Event()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    threads: list[threading.Thread] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed: str | None = None
    try:
        for service in services(options):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ponder", *service.args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                # its own process group: Ctrl-C in the terminal reaches only us, and we
                # stop the children in order
                start_new_session=True,
            )
            procs[service.name] = proc
        # started after every Popen: preexec_fn must not run beside other threads
        for name, proc in procs.items():
            assert proc.stdout is not None
            threads.append(printer.follow(printer.prefix_for(name), proc.stdout))

        api_url = f"http://{options.host}:{options.port}"
        try:
            wait_http_ok(f"{api_url}/healthz", list(procs.values()), timeout=60.0)
        except RuntimeError as exc:
            failed = str(exc)
        if failed is None:
            _summary(printer, me, api_url, options)
        while failed is None and not stopping.is_set():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with code {proc.returncode}; stopping the others"
                    break
            stopping.wait(0.2)
    finally:
        if failed is not None:
            printer.line(me, f"{warn}{failed}{reset}")
        printer.line(me, "stopping: workers hand their jobs back after the calls in flight")
        _stop(procs.values(), options.stop_seconds)
        for thread in threads:
            thread.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        printer.line(me, "stopped")
    return 1 if failed is not None else 0


def _summary(printer: _Printer, me: str, api_url: str, options: UpOptions) -> None:
    lines = [
        f"API        {api_url}  (interactive docs: {api_url}/docs)",
        "API key    ponder keys create --tenant me   (in another terminal, same settings)",
        f"try        curl -s {api_url}/v1/strategies -H 'Authorization: Bearer <key>'",
    ]
    if options.sim:
        lines.append(
            f"sim model  http://127.0.0.1:{options.sim_port}/v1 (OpenAI-compatible; the "
            "built-in `sim` profile needs no server)"
        )
    lines.append("stop       Ctrl-C")
    for text in lines:
        printer.line(me, text)


def _stop(procs: Iterable[subprocess.Popen[bytes]], grace: float) -> None:
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
