"""The service as real processes (`ponder sim serve`, `ponder api`, `ponder worker`, `ponder beat`),
for e2e and chaos tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ponder.localproc import free_port, wait_http_ok
from tests.conftest import REDIS_URL

PONDER = [sys.executable, "-m", "ponder"]


@dataclass
class Stack:
    env: dict[str, str]
    api_url: str
    sim_url: str
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``ponder ARGS`` in its own process group (so a test can kill -9 it whole),
        with ``env`` added to the stack's environment."""
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed by the OS at exit
        proc = subprocess.Popen(
            [*PONDER, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PONDER, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def new_key(self, tenant: str) -> str:
        out = self.cli("keys", "create", "--tenant", tenant)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.logdir.glob("*.log"))
        )

    def kill9(self, name: str) -> None:
        """SIGKILL the whole process group of ``name`` (a worker and its children)."""
        import signal

        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@contextmanager
def running_stack(
    pg_url: str,
    queue_name: str,
    tmp_path: Path,
    *,
    sim_args: tuple[str, ...] = (),
    worker_concurrency: int = 2,
    extra_models: str = "",
    workers: int = 1,
    broker_url: str = REDIS_URL,
    env_overrides: dict[str, str] | None = None,
    api_args: tuple[str, ...] = (),
    worker_args: tuple[str, ...] = (),
) -> Iterator[Stack]:
    """The service as processes: sim, api and ``workers`` workers (named ``worker``,
    ``worker2``, ...), with the Redis at ``broker_url`` as broker. ``extra_models`` is
    YAML appended to the models file's list (each entry indented by two spaces, like
    ``sim-http``), e.g. a profile with its own limits on the same sim server
    (``{sim_port}`` in it is replaced with the server's port). ``api_args`` and
    ``worker_args`` are added to the command lines of the api and of every worker."""
    sim_port, api_port = free_port(), free_port()
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  - name: sim-http\n"
        "    provider: openai\n"
        f"    base_url: http://127.0.0.1:{sim_port}/v1\n"
        "    model: sim-1\n" + extra_models.replace("{sim_port}", str(sim_port))
    )
    env = dict(os.environ)
    env.update(
        PONDER_DATABASE_URL=pg_url,
        PONDER_BROKER_URL=broker_url,
        PONDER_QUEUE=queue_name,
        PONDER_MODELS_FILE=str(models),
        PONDER_WEBHOOK_ALLOW_PRIVATE="true",
        PONDER_LEASE_SECONDS="6",
        PONDER_REQUEUE_AFTER_SECONDS="5",
        PONDER_REAPER_INTERVAL_SECONDS="1",
    )
    env.update(env_overrides or {})
    s = Stack(
        env=env,
        api_url=f"http://127.0.0.1:{api_port}",
        sim_url=f"http://127.0.0.1:{sim_port}",
        logdir=tmp_path,
    )
    s.start("sim", "sim", "serve", "--port", str(sim_port), *sim_args)
    s.start("api", "api", "--port", str(api_port), *api_args)
    for index in range(workers):
        name = "worker" if index == 0 else f"worker{index + 1}"
        s.start(
            name,
            "worker",
            "--processes",
            str(worker_concurrency),
            "--loglevel",
            "INFO",
            *worker_args,
        )
    try:
        wait_http_ok(f"{s.sim_url}/healthz", list(s.procs.values()))
        wait_http_ok(f"{s.api_url}/readyz", list(s.procs.values()))
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        s.stop()
