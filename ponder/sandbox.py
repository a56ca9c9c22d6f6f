"""Run untrusted Python in a sandbox made by bubblewrap (``bwrap``).

How a run is isolated (the *isolated* mode — the only one used unless explicitly allowed):

- The worker starts **bubblewrap** with an **empty environment**. bwrap makes new **user,
  mount, PID, network, IPC, UTS and cgroup namespaces** and builds a fresh root from
  nothing: ``/usr`` (and the ``/bin``, ``/lib``... links to it), a handful of files from
  ``/etc`` (``passwd``, ``group``, ``hosts``, ``localtime``, ``ld.so.cache``...) and the
  interpreter's own install prefix, all **read-only**; a fresh ``/proc`` showing only the
  sandbox's processes; a minimal read-only ``/dev`` (``null``, ``zero``, ``urandom``...);
  a size-limited **tmpfs on /tmp** as the working directory. ``/`` itself is a read-only
  tmpfs. Nothing else of the host exists inside: no home or project directory, no
  ``/var``, ``/run``, ``/sys``, no other run's files.
- The code runs as an unprivileged uid **with no capabilities** in that user namespace,
  with ``no_new_privs`` set (setuid binaries do not elevate), in a new session, and
  ``--disable-userns`` forbids it any further user namespace: it cannot unmount, remount
  or bind anything, nor make a namespace in which it could. The mounts were made in a
  namespace it does not control.
- When the worker is **root**, the run first drops to a **fresh random uid/gid** (no
  supplementary groups) with ``setpriv`` before bwrap starts, so the sandbox is never
  root's uid on the host. When the interpreter lives where a stranger cannot reach it
  (say under ``/root``), an outer bwrap, still root but keeping only the capabilities
  to change uid, first builds a world-readable view with the same read-only mounts for
  the unprivileged one to start from. When the worker is **not root**, bwrap runs as the
  worker's own user (unprivileged user namespaces must be allowed).
- The new network namespace has only its own loopback: nothing on the host, on
  127.0.0.1 or elsewhere, is reachable (``ECONNREFUSED`` at once on loopback,
  ``ENETUNREACH`` for every other address).
- Inside, a small **supervisor** is **pid 1** (signals from the sandbox cannot kill it,
  and it is not dumpable: the program can neither ptrace it nor read its memory or file
  descriptors). It forks the **program process**, which sets ``RLIMIT_CPU``,
  ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, ``RLIMIT_NOFILE`` and
  ``RLIMIT_CORE=0``, ``chdir``\\ s to ``/tmp`` and runs the code. ``RLIMIT_NPROC`` is
  counted per user namespace and uid, so it counts only this run's processes: a fork
  bomb stops at the limit.
- The supervisor enforces the **wall-clock timeout** and caps the **files** in ``/tmp``
  (bwrap cannot set a tmpfs inode limit, so it counts them every 50 ms): past either it
  ``SIGKILL``\\ s every process in the sandbox. When it exits, the kernel kills whatever
  is left in the PID namespace — including processes that ``setsid()`` or double-fork.
  bwrap's ``--die-with-parent`` takes the whole sandbox down with the worker. The worker
  keeps a second, later deadline and kills bwrap's process group should that hang.
- stdout and stderr are read as they come; the first ``max_output_bytes`` of each are
  kept, the rest counted and dropped; past ``output_kill_bytes`` the run is killed.

Without root (user mode) the program's files and processes are the worker user's on the
host, but it sees nothing of theirs outside its view; its supplementary groups cannot be
dropped without privilege, and they show as ``nogroup``.

If bwrap is missing or cannot make its namespaces (``isolation_status()`` says why),
:func:`run_python` raises :class:`SandboxUnavailable` unless ``allow_unisolated=True``
(setting ``sandbox_allow_unisolated``, dev only): then the code runs with rlimits only,
in a host temporary directory, as the worker's own user, **with network access**, and
the result says ``isolated=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.errors import ErrorCode, PonderError

REPORT_FILE = ".ponder-report"
"""A program may write this file in its working directory; its content (≤ 256 KiB) comes
back as :attr:`SandboxResult.report`, read by the supervisor after the run."""

MAX_REPORT_BYTES = 256 * 1024


class SandboxUnavailable(PonderError, RuntimeError):
    """Isolation cannot be set up here and unisolated execution is not allowed."""

    code = ErrorCode.UNAVAILABLE


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 5.0
    cpu_s: float | None = None  # default: the wall-clock limit, rounded up
    memory_mb: int = 256  # address space (RLIMIT_AS)
    file_size_mb: int = 16  # largest file (RLIMIT_FSIZE)
    disk_mb: int | None = None  # size of the /tmp tmpfs; default: 4 × file_size_mb
    max_files: int = 4096  # files and directories in /tmp (isolated runs); beyond: killed
    max_processes: int = 32  # RLIMIT_NPROC, threads included
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024  # kept per stream
    output_kill_bytes: int = 16 * 1024 * 1024  # per stream; beyond this the run is killed

    def cpu_seconds(self) -> int:
        return max(1, math.ceil(self.cpu_s if self.cpu_s is not None else self.wall_s))


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None  # None when killed by a signal or never started
    timed_out: bool
    # "timeout", "output", "files", "cpu", "signal SIGxxx", "setup" or None
    killed_by: str | None
    stdout: str
    stderr: str
    truncated: bool  # stdout or stderr was cut at max_output_bytes
    wall_s: float
    isolated: bool
    report: str | None = None  # the program's REPORT_FILE, if it wrote one
    signal: int | None = None
    processes_at_kill: int | None = None  # live program processes when the timeout hit
    max_rss_kb: int | None = None
    cpu_time_s: float | None = None
    setup_error: str | None = None


@dataclass(frozen=True)
class IsolationStatus:
    available: bool
    mode: str | None  # "root" (dropped to a fresh uid) or "user" (the worker's own uid)
    reason: str = ""
    tool: str = ""  # e.g. "bubblewrap 0.8.0"
    visible: tuple[str, ...] = field(default=())  # host paths the sandbox sees (read-only)


# --- the supervisor: pid 1 of the sandbox, a fresh `python -I -S -B` ------------------

_SUPERVISOR = r"""
import ctypes, json, os, signal, stat, sys, time
cfg = json.loads(sys.stdin.buffer.read())
sys.stdin.close()
R = cfg["fd"]
def emit(obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(R, data):]
libc = ctypes.CDLL(None, use_errno=True)
isolated, lim, workdir = cfg["isolated"], cfg["limits"], cfg["workdir"]
# not dumpable: the program, under the same uid, can neither ptrace this process nor open
# its /proc files (memory, file descriptors, environment)
libc.prctl(4, 0, 0, 0, 0)
os.environ.pop("PWD", None)  # set by bwrap; the program starts with an empty environment
emit({"started": True})
deadline = time.monotonic() + cfg["wall_s"]  # before the fork: the wall clock comes first
prog = os.fork()
if prog == 0:
    # the program: limits, then run
    try:
        import resource as rs
        os.close(R)
        libc.prctl(4, 1, 0, 0, 0)
        if not isolated:
            os.setpgid(0, 0)
            if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(1, signal.SIGKILL, 0, 0, 0):
                raise OSError(ctypes.get_errno(), "prctl")
        rs.setrlimit(rs.RLIMIT_CORE, (0, 0))
        rs.setrlimit(rs.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
        rs.setrlimit(rs.RLIMIT_FSIZE, (lim["fsize_mb"] << 20,) * 2)
        rs.setrlimit(rs.RLIMIT_NOFILE, (lim["nofile"],) * 2)
        # counted per user namespace and uid: the supervisor (pid 1) is one of them
        nproc = lim["nproc"] + (1 if isolated else 0)
        rs.setrlimit(rs.RLIMIT_NPROC, (nproc, nproc))
        os.chdir(workdir)
        for name, text in cfg["files"].items():
            with open(name, "w", encoding="utf-8") as fh:
                fh.write(text)
        rs.setrlimit(rs.RLIMIT_AS, (lim["mem_mb"] << 20,) * 2)
    except BaseException as exc:
        sys.stderr.write("ponder-sandbox: setup failed: %s\n" % exc)
        os._exit(125)
    sys.argv = ["main.py", *cfg["argv"]]
    code = cfg["code"]
    del cfg
    g = {"__name__": "__main__", "__file__": workdir + "/main.py",
         "__builtins__": __builtins__}
    mod = type(sys)("__main__")
    mod.__dict__.update(g)
    sys.modules["__main__"] = mod
    exec(compile(code, "main.py", "exec"), mod.__dict__)
    sys.exit(0)
# pid 1 (or, unisolated, the session leader): reap, enforce the limits, report
pid1 = isolated and os.getpid() == 1
def kill_all():
    try:
        if pid1:
            os.kill(-1, signal.SIGKILL)  # every process of this PID namespace but pid 1
        else:
            os.killpg(prog, signal.SIGKILL)
    except OSError:
        pass
def count_procs():
    try:
        return sum(1 for n in os.listdir("/proc") if n.isdigit())
    except OSError:
        return None
def files_used():
    try:
        st = os.statvfs(workdir)
        return st.f_files - st.f_ffree
    except OSError:
        return 0
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
state = {"timed_out": False, "files": False, "procs": None}
status = None
def took(st, ru):
    return {"status": st, "maxrss": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}
while status is None:
    while True:
        try:
            pid, st, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            break
        if pid == prog:
            status = took(st, ru)
    if status is not None:
        break
    over = pid1 and files_used() > lim["files"]
    left = deadline - time.monotonic()
    if over or left <= 0:
        state["files"], state["timed_out"] = over, not over
        if pid1 and not over:
            state["procs"] = count_procs()
        kill_all()
        _, st, ru = os.wait4(prog, 0)
        status = took(st, ru)
        break
    signal.sigtimedwait([signal.SIGCHLD], min(left, 0.05))
kill_all()  # stragglers (in the sandbox they would die with pid 1 anyway)
report = None
try:
    fd = os.open(os.path.join(workdir, cfg["report"]),
                 os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            report = os.read(fd, cfg["max_report"]).decode("utf-8", "replace")
    finally:
        os.close(fd)
except OSError:
    pass
emit(dict(status, report=report, **state))
"""

# --- what the sandbox sees, and the command that makes it -----------------------------

_ROOT_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # links into /usr
_ETC_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/protocols",
    "/etc/services",
)
_TOOL_DIRS = ("/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin")


def interpreter() -> str:
    """The base interpreter (not a venv shim, which may sit in a hidden directory)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _keep_paths() -> list[str]:
    """The interpreter's install: bound read-only into the sandbox."""
    paths = {os.path.realpath(sys.base_prefix), os.path.dirname(interpreter())}
    return sorted(p for p in paths if not any(_under(p, q) for q in paths if q != p))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _find_tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_TOOL_DIRS])
    found = shutil.which(name, path=path)
    return os.path.realpath(found) if found else None


@functools.cache
def _view() -> tuple[str, ...]:
    """bwrap arguments for the read-only part of the sandbox's file system."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in _ROOT_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    for path in _keep_paths():
        if not _under(path, "/usr"):
            # --dir first: parents bwrap makes for a bind are not readable by others
            args += ["--perms", "0755", "--dir", path, "--ro-bind", path, path]
    return tuple(args)


def _visible() -> tuple[str, ...]:
    etc = [p for p in _ETC_FILES if os.path.exists(p)]
    return ("/usr", *etc, *(p for p in _keep_paths() if not _under(p, "/usr")))


def _strangers_can_run(path: str) -> bool:
    """Whether a uid with no groups can reach ``path`` (every parent searchable by others)."""
    try:
        current = Path("/")
        for part in Path(path).parts[1:]:
            if not current.stat().st_mode & stat.S_IXOTH:
                return False
            current = current / part
        return bool(current.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def _fresh_uid() -> int:
    return 1_000_000 + secrets.randbelow(1_000_000_000)


def _command(cfg: dict[str, Any]) -> list[str]:
    """The argv that runs the supervisor with ``cfg`` (isolated: inside bwrap)."""
    supervisor = [interpreter(), "-I", "-S", "-B", "-c", _SUPERVISOR]
    if not cfg["isolated"]:
        return supervisor
    bwrap, setpriv = _find_tool("bwrap"), _find_tool("setpriv")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    uid = str(cfg["uid"])
    inner = [
        bwrap,
        "--unshare-all",  # user, mount, PID, network, IPC, UTS, cgroup
        "--unshare-user",
        "--disable-userns",  # no further user namespace inside: no way to regain privileges
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        uid,
        "--gid",
        uid,
        "--hostname",
        "sandbox",
        "--clearenv",
        *_view(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--perms",
        "0700",
        "--size",
        str(cfg["limits"]["disk_mb"] << 20),
        "--tmpfs",
        "/tmp",
        "--remount-ro",
        "/",
        "--chdir",
        "/tmp",
        "--as-pid-1",
        "--",
        *supervisor,
    ]
    if os.geteuid() != 0:
        return inner
    if setpriv is None:
        raise SandboxUnavailable("setpriv (util-linux) is not installed")
    drop = [setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", "--"]
    if all(_strangers_can_run(p) for p in (interpreter(), *_keep_paths(), bwrap)):
        return drop + inner
    # the interpreter is out of a stranger's reach: an outer bwrap, root with only the
    # capabilities to change uid, gives the fresh uid the same read-only view to start from
    tools = [a for p in (bwrap, setpriv) if not _under(p, "/usr") for a in ("--ro-bind", p, p)]
    outer = [
        bwrap,
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        *_view(),
        *tools,
        "--bind",  # a fully visible /proc, so that the inner bwrap may mount its own
        "/proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--",
    ]
    return outer + drop + inner


def _config(
    code: str,
    limits: SandboxLimits,
    files: Mapping[str, str],
    argv: Sequence[str],
    isolate: bool,
    workdir: str | None,
) -> dict[str, Any]:
    for name in files:
        if "/" in name or name in ("", ".", "..", REPORT_FILE):
            raise ValueError(f"bad sandbox file name {name!r}")
    return {
        "isolated": isolate,
        # the uid inside the sandbox; as root also the fresh uid it runs as on the host
        "uid": _fresh_uid(),
        "workdir": "/tmp" if isolate else workdir,
        "code": code,
        "files": dict(files),
        "argv": list(argv),
        "report": REPORT_FILE,
        "max_report": MAX_REPORT_BYTES,
        "wall_s": limits.wall_s,
        "limits": {
            "cpu_s": limits.cpu_seconds(),
            "mem_mb": limits.memory_mb,
            "fsize_mb": limits.file_size_mb,
            "disk_mb": limits.disk_mb or 4 * limits.file_size_mb,
            "files": limits.max_files,
            "nproc": limits.max_processes,
            "nofile": limits.max_open_files,
        },
    }


# --- isolation probe -------------------------------------------------------------------


def _probe() -> SandboxResult:
    limits = SandboxLimits(wall_s=10.0)
    return asyncio.run(_run(_PROBE, limits, {}, (), isolate=True))


_PROBE = """
import json, os, socket
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({
    "ifaces": sorted(name for _, name in socket.if_nameindex()),
    "uid": os.getuid(),
    "caps": status["CapEff"].strip(),
    "nnp": status["NoNewPrivs"].strip(),
}))
"""


def _tool_version(bwrap: str) -> str:
    try:
        out = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=5, env={}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "bubblewrap"
    return out.strip() or "bubblewrap"


@functools.cache
def isolation_status() -> IsolationStatus:
    """Whether isolated runs work here: probed once per process by a real run (~50 ms)
    that must come out with only a loopback, no capabilities and no_new_privs. Safe to
    call from inside an event loop."""
    if not sys.platform.startswith("linux"):
        return IsolationStatus(False, None, f"namespaces need Linux, not {sys.platform}")
    bwrap = _find_tool("bwrap")
    if bwrap is None:
        return IsolationStatus(
            False, None, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        )
    tool = _tool_version(bwrap)
    try:
        with ThreadPoolExecutor(1) as pool:  # asyncio.run needs a thread without a loop
            result = pool.submit(_probe).result()
    except SandboxUnavailable as exc:
        return IsolationStatus(False, None, str(exc), tool)
    except Exception as exc:  # pragma: no cover - defensive
        return IsolationStatus(False, None, f"the isolation probe failed: {exc}", tool)
    if result.setup_error:
        return IsolationStatus(False, None, f"{tool}: {result.setup_error}", tool)
    try:
        seen = json.loads(result.stdout)
    except ValueError:
        seen = None
    expected = {"ifaces": ["lo"], "caps": "0" * 16, "nnp": "1"}
    if (
        result.exit_code != 0
        or not isinstance(seen, dict)
        or any(seen.get(k) != v for k, v in expected.items())
        or seen.get("uid") == 0
    ):
        why = (result.stderr.strip() or result.stdout.strip())[-300:]
        return IsolationStatus(False, None, f"the probe did not come out isolated: {why}", tool)
    mode = "root" if os.geteuid() == 0 else "user"
    return IsolationStatus(True, mode, "", tool, _visible())


# --- the worker side -------------------------------------------------------------------

_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _slots() -> asyncio.Semaphore:
    """At most one sandbox per core at a time, per event loop."""
    loop = asyncio.get_running_loop()
    sem = _SLOTS.get(loop)
    if sem is None:
        sem = _SLOTS[loop] = asyncio.Semaphore(max(1, os.cpu_count() or 1))
    return sem


async def run_python_async(
    code: str,
    *,
    limits: SandboxLimits | None = None,
    files: Mapping[str, str] | None = None,
    argv: Sequence[str] = (),
    allow_unisolated: bool = False,
) -> SandboxResult:
    """Run ``code`` as ``main.py`` in the sandbox, with ``files`` beside it in its working
    directory and ``argv`` as ``sys.argv[1:]``. Never blocks the event loop.

    Raises :class:`SandboxUnavailable` when isolation does not work here, unless
    ``allow_unisolated`` (then the result says ``isolated=False``)."""
    limits = limits or SandboxLimits()
    status = await asyncio.to_thread(isolation_status)
    if not status.available and not allow_unisolated:
        raise SandboxUnavailable(
            "refusing to run untrusted code: the sandbox cannot isolate it here "
            f"({status.reason}); set PONDER_SANDBOX_ALLOW_UNISOLATED=true to run it "
            "without isolation (unsafe; dev only)"
        )
    async with _slots():
        return await _run(code, limits, files or {}, argv, isolate=status.available)


def run_python(
    code: str,
    *,
    limits: SandboxLimits | None = None,
    files: Mapping[str, str] | None = None,
    argv: Sequence[str] = (),
    allow_unisolated: bool = False,
) -> SandboxResult:
    """Blocking form of :func:`run_python_async` (not for use inside an event loop)."""
    return asyncio.run(
        run_python_async(
            code, limits=limits, files=files, argv=argv, allow_unisolated=allow_unisolated
        )
    )


class _Capture:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > self.keep

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kill the run: bwrap's process group (the sandbox dies with bwrap), or the
    unisolated supervisor's."""
    if proc.returncode is None:
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()


async def _run(
    code: str,
    limits: SandboxLimits,
    files: Mapping[str, str],
    argv: Sequence[str],
    *,
    isolate: bool,
) -> SandboxResult:
    loop = asyncio.get_running_loop()
    workdir = None if isolate else tempfile.mkdtemp(prefix="ponder-sandbox-")
    start = time.monotonic()
    read_fd, write_fd = os.pipe()
    proc: asyncio.subprocess.Process | None = None
    try:
        cfg = _config(code, limits, files, argv, isolate, workdir)
        cfg["fd"] = write_fd
        if workdir is not None:
            os.chmod(workdir, 0o700)
        try:
            proc = await asyncio.create_subprocess_exec(
                *_command(cfg),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd="/",
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        except OSError as exc:  # bwrap gone since it was found, say
            if not isolate:
                raise
            raise SandboxUnavailable(f"cannot start the sandbox: {exc}") from None
        finally:
            os.close(write_fd)
        status_reader = asyncio.StreamReader(limit=2 * MAX_REPORT_BYTES + 65536)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(status_reader),
            os.fdopen(read_fd, "rb", buffering=0),
        )
        read_fd = -1  # owned by the transport now
        try:
            return await _supervise(proc, cfg, limits, status_reader, isolate, start)
        finally:
            transport.close()
    except BaseException:
        if proc is not None:
            await asyncio.shield(_stop(proc))
        raise
    finally:
        if read_fd != -1:
            os.close(read_fd)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


async def _supervise(
    proc: asyncio.subprocess.Process,
    cfg: dict[str, Any],
    limits: SandboxLimits,
    status_reader: asyncio.StreamReader,
    isolate: bool,
    start: float,
) -> SandboxResult:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(limits.max_output_bytes), _Capture(limits.max_output_bytes)
    overflow = False

    async def pump(stream: asyncio.StreamReader, cap: _Capture) -> None:
        nonlocal overflow
        while chunk := await stream.read(65536):
            cap.add(chunk)
            if cap.total > limits.output_kill_bytes and not overflow:
                overflow = True
                _signal_group(proc, signal.SIGKILL)

    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(json.dumps(cfg).encode())
        await proc.stdin.drain()
    proc.stdin.close()

    pumps = [
        asyncio.ensure_future(pump(proc.stdout, out)),
        asyncio.ensure_future(pump(proc.stderr, err)),
    ]
    status_task = asyncio.ensure_future(status_reader.read())
    worker_timeout = False
    try:
        await asyncio.wait_for(proc.wait(), limits.wall_s + 5.0)
    except TimeoutError:  # the sandbox itself is stuck: kill everything we can
        worker_timeout = True
        await _stop(proc)
    # descendants die with the PID namespace; give the pipes a moment to reach EOF
    _done, pending = await asyncio.wait([*pumps, status_task], timeout=2.0)
    for task in pending:
        task.cancel()
    if pending:
        _signal_group(proc, signal.SIGKILL)
    status_bytes = status_task.result() if status_task in _done else b""
    wall = time.monotonic() - start

    info: dict[str, Any] = {}
    for line in status_bytes.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                info.update(obj)
    setup_error: str | None = None
    if not info.get("started") and not overflow and not worker_timeout:
        # bwrap (or the interpreter) failed before the supervisor ran: its own message
        tail = err.text().strip().splitlines()
        setup_error = tail[-1][:500] if tail else f"exited with code {proc.returncode}"
    elif "status" not in info and not overflow and not worker_timeout:
        setup_error = f"the sandbox stopped without a report (exit code {proc.returncode})"
    exit_code: int | None = None
    sig: int | None = None
    if isinstance(info.get("status"), int):
        code = os.waitstatus_to_exitcode(info["status"])
        if code < 0:
            sig = -code
        else:
            exit_code = code
    cpu = info.get("cpu")
    cpu_time = float(cpu) if isinstance(cpu, int | float) else None
    timed_out = bool(info.get("timed_out")) or worker_timeout
    killed_by: str | None = None
    if setup_error:
        killed_by = "setup"
    elif overflow:
        killed_by = "output"
    elif info.get("files"):
        killed_by = "files"
    elif timed_out:
        killed_by = "timeout"
    elif sig is not None:
        if sig == signal.SIGXCPU or (
            sig == signal.SIGKILL
            and cpu_time is not None
            and cpu_time >= limits.cpu_seconds() - 0.05
        ):
            killed_by = "cpu"
        else:
            try:
                killed_by = f"signal {signal.Signals(sig).name}"
            except ValueError:
                killed_by = f"signal {sig}"
    report = info.get("report")
    procs = info.get("procs")
    rss = info.get("maxrss")
    return SandboxResult(
        exit_code=exit_code,
        timed_out=timed_out,
        killed_by=killed_by,
        stdout=out.text(),
        stderr=err.text(),
        truncated=out.truncated or err.truncated,
        wall_s=wall,
        isolated=isolate,
        report=report if isinstance(report, str) else None,
        signal=sig,
        processes_at_kill=procs - 1 if isinstance(procs, int) else None,  # minus pid 1
        max_rss_kb=rss if isinstance(rss, int) else None,
        cpu_time_s=cpu_time,
        setup_error=setup_error,
    )


# --- `python -m ponder.sandbox`: runs under another user in the escape tests ----------


def _main() -> None:
    """Read ``{"jobs": [{"code", "argv", "files", "limits"}]}`` on stdin, run the jobs at
    once (at most one per core) and print ``{"status", "results"}`` as JSON."""
    request = json.load(sys.stdin)

    async def run_all() -> list[SandboxResult]:
        return list(
            await asyncio.gather(
                *(
                    run_python_async(
                        job["code"],
                        limits=SandboxLimits(**job.get("limits", {})),
                        files=job.get("files", {}),
                        argv=job.get("argv", ()),
                    )
                    for job in request["jobs"]
                )
            )
        )

    status = isolation_status()
    results = asyncio.run(run_all()) if status.available else []
    out = {
        "status": dataclasses.asdict(status),
        "results": [dataclasses.asdict(r) for r in results],
        "uid": os.geteuid(),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    _main()
