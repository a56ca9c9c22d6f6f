"""Private Redis and Postgres servers that a test may crash, flush and restart without
touching the shared ones: each runs on a free port, with its files in a temp dir.

Postgres: ``initdb`` refuses to run as root, so when the tests run as root the server
runs as the ``postgres`` OS user (``runuser``). The binaries are found on PATH, else in
the newest ``/usr/lib/postgresql/*/bin``; set ``PONDER_TEST_PG_BIN`` to choose.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ponder.localproc import free_port

PONDER_DB = "ponder"  # the database the chaos fixtures migrate in a private cluster


def _wait_port(port: int, *, open_: bool, timeout: float = 30.0) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (``open_``) or refuses them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                accepting = True
        except OSError:
            accepting = False
        if accepting == open_:
            return
        time.sleep(0.05)
    state = "accept" if open_ else "refuse"
    raise RuntimeError(f"127.0.0.1:{port} did not {state} connections within {timeout:g} s")


class PrivateRedis:
    """``redis-server`` on a free port, in memory only (nothing saved, nothing reloaded)."""

    def __init__(self, logdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH (install the redis-server package)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = logdir / f"redis-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self._log, "ab")  # noqa: SIM115 - lives as long as the server
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        _wait_port(self.port, open_=True)

    def flushall(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL: whatever it held is gone)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        _wait_port(self.port, open_=False)


def pg_bin_dir() -> Path:
    """Where Postgres's server binaries (initdb, pg_ctl) are."""
    configured = os.environ.get("PONDER_TEST_PG_BIN")
    if configured:
        return Path(configured)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise RuntimeError(
            "no Postgres server binaries found (pg_ctl): install postgresql or set "
            "PONDER_TEST_PG_BIN to the directory holding initdb and pg_ctl"
        )
    return candidates[-1].parent


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (the server refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _run(cmd: list[str], what: str) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {out.returncode}): {out.stdout}\n{out.stderr}")


class PrivatePostgres:
    """A Postgres cluster of its own (trust auth, 127.0.0.1 and a socket in its dir)."""

    def __init__(self, root: Path) -> None:
        self.root = root  # owned by the server's user; holds data/, the socket and the log
        self.data = root / "data"
        self.port = free_port()
        self._bin = pg_bin_dir()

    @classmethod
    def create(cls) -> PrivatePostgres:
        """A brand new cluster (``initdb``), not started."""
        pg = cls(Path(tempfile.mkdtemp(prefix="ponder-pg-")))
        _give_to_postgres(pg.root)
        _run(
            _as_postgres(
                [
                    str(pg._bin / "initdb"),
                    "-D",
                    str(pg.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            "initdb",
        )
        return pg

    def copy(self) -> PrivatePostgres:
        """A stopped copy of this (stopped) cluster, on its own port."""
        clone = PrivatePostgres(Path(tempfile.mkdtemp(prefix="ponder-pg-")))
        _give_to_postgres(clone.root)
        _run(["cp", "-a", str(self.data), str(clone.data)], "copying the Postgres data dir")
        return clone

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        _run(
            _as_postgres(
                [
                    str(self._bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            "starting Postgres",
        )

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: ``immediate`` is a crash (recovery at the next start)."""
        _run(
            _as_postgres(
                [str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            ),
            "stopping Postgres",
        )

    def running(self) -> bool:
        status = subprocess.run(
            _as_postgres([str(self._bin / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
        )
        return status.returncode == 0

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
