"""Run untrusted Python in a locked-down child process.

How a run is isolated (the *isolated* mode — the only one used unless explicitly allowed):

- The worker starts a **launcher**: the base interpreter as ``python -I -S -B`` (isolated
  mode, no site, no user site, no ``PYTHON*`` variables) with an **empty environment**.
  It reads its job (code, files, limits) from stdin and reports on a private pipe (fd 3)
  that the untrusted code never holds.
- The launcher ``unshare``\\ s new **network, mount, PID, IPC and UTS namespaces** (as
  root; otherwise inside a new user namespace). The new network namespace has only a
  loopback interface that is down: every ``connect`` — to 127.0.0.1 or to a public
  address — fails at once with ``ENETUNREACH`` and no packet leaves the machine.
- It forks **pid 1** of the new PID namespace, which makes ``/`` private (nothing
  propagates back to the host), mounts a size-limited **tmpfs on /tmp** as the working
  directory (gone when the namespace dies: no clean-up can be missed), mounts empty
  tmpfs over the home and project directories, ``/root``, ``/home``, ``/run``,
  ``/var/tmp``, ``/dev/shm``, ``/mnt``, ``/srv``, ``/opt`` (re-exposing only the
  interpreter's own install prefix), and a fresh ``/proc`` showing only the sandbox's
  own processes. Pid 1 reaps zombies and relays the program's exit status.
- Pid 1 forks the **program process**, which sets ``RLIMIT_CPU``, ``RLIMIT_AS``,
  ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, ``RLIMIT_NOFILE`` and ``RLIMIT_CORE=0``, drops to
  a **fresh random unprivileged uid/gid** (no supplementary groups, ``no_new_privs``),
  ``chdir``\\ s to ``/tmp`` and runs the code. Because the uid is fresh and not root,
  ``RLIMIT_NPROC`` is enforced (root is exempt from it) and counts only this run's
  processes: a fork bomb stops at the limit.
- The launcher enforces the **wall-clock timeout**: it ``SIGKILL``\\ s pid 1, and the kernel
  then kills every process in the PID namespace — including ones that ``setsid()`` or
  double-fork to escape a process group. The worker keeps a second, later deadline
  and kills the launcher's whole process group should the launcher itself hang.
- stdout and stderr are read as they come; the first ``max_output_bytes`` of each are
  kept, the rest counted and dropped; past ``output_kill_bytes`` the run is killed.

What the program can still see: world-readable system files (``/etc/passwd``,
``/usr``, ``/etc/os-release``...) — it reads them as an unprivileged stranger, so
``/etc/shadow`` and other root-only files are refused; the hidden directories above look
empty. Without root (user-namespace mode) the program runs as root *inside* its user
namespace, mapped to the worker's own uid: it can read what the worker's user can read
outside the hidden directories, and ``RLIMIT_NPROC`` counts all that user's processes.

If the namespaces cannot be created (``isolation_status()`` says why), :func:`run_python`
raises :class:`SandboxUnavailable` unless ``allow_unisolated=True`` (setting
``sandbox_allow_unisolated``, dev only): then the code runs with rlimits only, in a host
temporary directory, as the worker's own user, **with network access**, and the result
says ``isolated=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import secrets
import shutil
import signal
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
back as :attr:`SandboxResult.report`, read by the trusted launcher after the run."""

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
    killed_by: str | None  # "timeout", "output", "cpu", "signal SIGxxx", "setup" or None
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
    mode: str | None  # "root" or "userns"
    reason: str = ""
    hidden: tuple[str, ...] = field(default=())


# --- the launcher: runs in a fresh `python -I -S -B` with an empty environment --------

_LAUNCHER = r"""
import ctypes, json, os, signal, sys
cfg = json.loads(sys.stdin.buffer.read())
sys.stdin.close()
R = cfg["fd"]
def emit(obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(R, data):]
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
def ck(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, what + ": " + os.strerror(e))
def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    ck(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), "mount " + dst)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
isolate, uid, lim = cfg["isolate"], cfg["uid"], cfg["limits"]
workdir = "/tmp" if isolate else cfg["workdir"]
try:
    if isolate:
        flags = 0x20000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000
        if cfg["userns"]:
            outer_uid, outer_gid = os.getuid(), os.getgid()
            ck(libc.unshare(flags | 0x10000000), "unshare")
            for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % outer_uid),
                               ("gid_map", "0 %d 1" % outer_gid)):
                with open("/proc/self/" + name, "w") as fh:
                    fh.write(text)
        else:
            ck(libc.unshare(flags), "unshare")
    ck(libc.prctl(1, signal.SIGTERM, 0, 0, 0), "prctl")  # die with the worker
except Exception as exc:
    emit({"error": "isolation: %s" % exc})
    os._exit(125)
pid1 = os.fork()
if pid1 == 0:
    # pid 1 of the new PID namespace (or a session leader when not isolating)
    try:
        if isolate:
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            keep = {}
            for k in cfg["keep"]:
                keep[k] = os.open(k, os.O_PATH | os.O_DIRECTORY)
            for d in cfg["hide"]:
                mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
                for k, fd in keep.items():
                    if k.startswith(d.rstrip("/") + "/"):
                        os.makedirs(k, exist_ok=True)
                        mount("/proc/self/fd/%d" % fd, k, None, MS_BIND | MS_REC)
            for fd in keep.values():
                os.close(fd)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                  "size=%dm,nr_inodes=4096,mode=700,uid=%d,gid=%d"
                  % (lim["disk_mb"], uid if uid is not None else 0,
                     uid if uid is not None else 0))
            try:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            except OSError:
                if not cfg["userns"]:
                    raise
            try:
                libc.sethostname(b"sandbox", 7)
            except Exception:
                pass
        else:
            os.setsid()
    except Exception as exc:
        emit({"error": "setup: %s" % exc})
        os._exit(125)
    prog = os.fork()
    if prog == 0:
        # the program: limits, drop privileges, run
        try:
            import resource as rs
            os.close(R)
            rs.setrlimit(rs.RLIMIT_CORE, (0, 0))
            rs.setrlimit(rs.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
            rs.setrlimit(rs.RLIMIT_FSIZE, (lim["fsize_mb"] << 20,) * 2)
            rs.setrlimit(rs.RLIMIT_NOFILE, (lim["nofile"],) * 2)
            rs.setrlimit(rs.RLIMIT_NPROC, (lim["nproc"],) * 2)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            ck(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
            ck(libc.prctl(1, signal.SIGKILL, 0, 0, 0), "pdeathsig")
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
    status = None
    while True:
        try:
            pid, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == prog:
            status = {"status": st, "maxrss": ru.ru_maxrss,
                      "cpu": ru.ru_utime + ru.ru_stime}
            break
    emit(status or {"error": "lost the program process"})
    os._exit(0)
# the launcher: enforce the wall clock, then hand back the report
state = {"timed_out": False, "procs": None, "cancelled": False}
def count_procs():
    try:
        return sum(1 for n in os.listdir("/proc") if n.isdigit())
    except OSError:
        return None
def kill_all():
    try:
        if isolate:
            os.kill(pid1, signal.SIGKILL)
        else:
            os.killpg(pid1, signal.SIGKILL)
    except OSError:
        pass
def on_alarm(signum, frame):
    state["timed_out"] = True
    if isolate:
        state["procs"] = count_procs()
    kill_all()
def on_term(signum, frame):
    state["cancelled"] = True
    kill_all()
signal.signal(signal.SIGALRM, on_alarm)
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
signal.signal(signal.SIGHUP, on_term)
signal.setitimer(signal.ITIMER_REAL, cfg["wall_s"])
os.waitpid(pid1, 0)
signal.setitimer(signal.ITIMER_REAL, 0)
if not isolate:
    kill_all()  # stragglers in the session
report = None
try:
    fd = os.open(os.path.join(workdir, cfg["report"]),
                 os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        import stat
        if stat.S_ISREG(os.fstat(fd).st_mode):
            report = os.read(fd, cfg["max_report"]).decode("utf-8", "replace")
    finally:
        os.close(fd)
except OSError:
    pass
emit({"timed_out": state["timed_out"], "procs": state["procs"],
      "cancelled": state["cancelled"], "report": report})
"""

_HIDE_CANDIDATES = (
    "/root",
    "/home",
    "/work",
    "/run",
    "/var/tmp",
    "/var/log",
    "/dev/shm",
    "/mnt",
    "/media",
    "/srv",
    "/opt",
)
_NEVER_HIDE = ("/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev", "/tmp")


def interpreter() -> str:
    """The base interpreter (not a venv shim, which may sit in a hidden directory)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _keep_paths() -> list[str]:
    return sorted({os.path.realpath(sys.base_prefix), os.path.dirname(interpreter())})


def _hide_paths(keep: Sequence[str]) -> list[str]:
    project = Path(__file__).resolve().parents[1]
    cands = [*_HIDE_CANDIDATES, str(project), str(Path.home()), os.getcwd()]
    out: list[str] = []
    for raw in cands:
        try:
            path = os.path.realpath(raw)
        except OSError:
            continue
        if path in _NEVER_HIDE or not os.path.isdir(path) or os.path.islink(raw):
            continue
        if any(path.startswith(n.rstrip("/") + "/") for n in ("/proc", "/dev/pts", "/sys")):
            continue
        if any(k == path or path.startswith(k.rstrip("/") + "/") for k in keep):
            continue  # inside the interpreter's own install
        out.append(path)
    out = sorted(set(out))
    # drop paths below another hidden path: the outer tmpfs hides them already
    return [p for p in out if not any(p.startswith(q + "/") for q in out if q != p)]


def _fresh_uid() -> int:
    return 1_000_000 + secrets.randbelow(1_000_000_000)


def _config(
    code: str,
    limits: SandboxLimits,
    files: Mapping[str, str],
    argv: Sequence[str],
    isolate: bool,
    workdir: str | None,
) -> dict[str, Any]:
    root = os.geteuid() == 0
    keep = _keep_paths()
    for name in files:
        if "/" in name or name in ("", ".", "..", REPORT_FILE):
            raise ValueError(f"bad sandbox file name {name!r}")
    return {
        "isolate": isolate,
        "userns": not root,
        # a fresh unprivileged uid — only when isolating: unisolated runs must read the
        # interpreter's files where they are (perhaps under a private /root)
        "uid": _fresh_uid() if root and isolate else None,
        "workdir": workdir,
        "code": code,
        "files": dict(files),
        "argv": list(argv),
        "keep": keep,
        "hide": _hide_paths(keep) if isolate else [],
        "report": REPORT_FILE,
        "max_report": MAX_REPORT_BYTES,
        "wall_s": limits.wall_s,
        "limits": {
            "cpu_s": limits.cpu_seconds(),
            "mem_mb": limits.memory_mb,
            "fsize_mb": limits.file_size_mb,
            "disk_mb": limits.disk_mb or 4 * limits.file_size_mb,
            "nproc": limits.max_processes,
            "nofile": limits.max_open_files,
        },
    }


# --- isolation probe -------------------------------------------------------------------


def _probe() -> SandboxResult:
    limits = SandboxLimits(wall_s=10.0)
    return asyncio.run(_run(_PROBE, limits, {}, (), isolate=True))


_PROBE = """
import os, socket
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", 9))
    print("net")
except OSError as e:
    print("nonet" if e.errno == 101 else "net:%s" % e)
print(os.getuid())
"""


@functools.cache
def isolation_status() -> IsolationStatus:
    """Whether isolated runs work here: probed once per process by a real run (~50 ms)
    that must come out with no network. Safe to call from inside an event loop."""
    if not sys.platform.startswith("linux"):
        return IsolationStatus(False, None, f"namespaces need Linux, not {sys.platform}")
    try:
        with ThreadPoolExecutor(1) as pool:  # asyncio.run needs a thread without a loop
            result = pool.submit(_probe).result()
    except Exception as exc:  # pragma: no cover - defensive
        return IsolationStatus(False, None, f"the isolation probe failed: {exc}")
    if result.setup_error:
        return IsolationStatus(False, None, result.setup_error)
    lines = result.stdout.split()
    if result.exit_code != 0 or not lines or lines[0] != "nonet":
        why = (result.stderr.strip() or result.stdout.strip())[-300:]
        return IsolationStatus(False, None, f"the probe did not come out isolated: {why}")
    mode = "root" if os.geteuid() == 0 else "userns"
    return IsolationStatus(True, mode, "", tuple(_hide_paths(_keep_paths())))


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
    """Ask the launcher to kill the sandbox; kill its process group if it does not."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 1.0)
    except TimeoutError:
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
            if cfg["uid"] is not None:
                os.chown(workdir, cfg["uid"], cfg["uid"])
        try:
            proc = await asyncio.create_subprocess_exec(
                interpreter(),
                "-I",
                "-S",
                "-B",
                "-c",
                _LAUNCHER,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd="/",
                pass_fds=(write_fd,),
                start_new_session=True,
            )
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
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

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
    except TimeoutError:  # the launcher itself is stuck: kill everything we can
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
    setup_error = info.get("error") if isinstance(info.get("error"), str) else None
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
