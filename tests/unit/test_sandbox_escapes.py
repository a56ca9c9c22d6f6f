"""Escapes from the sandbox, tried as root and as an unprivileged worker: all must fail.

Each attempt is candidate code run in the sandbox. It tries one way out (unmounting the
tmpfs under it, remounting read-write, binding, making a user namespace, setuid
binaries, joining namespaces, ptrace of its parent, reading planted secrets, another
run's files, writing outside /tmp, reaching the host's network, signalling the worker,
keeping capabilities, devices and kernel knobs) with several operations, and prints
``RESULT <n> blocked`` or ``RESULT <n> ESCAPED: <what worked>``. The host side then
checks what the sandbox could not see itself (nothing written, nothing connected, the
canary process alive).

The worker runs three ways: as root in this process (the interpreter, under /root here,
is out of a stranger's reach, so an outer bwrap gives the fresh uid its view); as root
with the system's ``/usr/bin/python3`` (setpriv, then bwrap: the common layout); and as
an unprivileged user (``setpriv --reuid``) with its own home and project directory,
through ``python -m ponder.sandbox``. As a non-root user, only the last one runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ponder
from ponder.sandbox import SandboxLimits, SandboxResult, isolation_status, run_python_async

SYSTEM_PYTHON = "/usr/bin/python3"
WORKER_UID = 2_000_000_000 + os.getpid() % 1_000_000  # no passwd entry needed
PROJECT = Path(ponder.__file__).resolve().parents[1]
LIMITS = {"wall_s": 10.0, "memory_mb": 512}

PRELUDE = r"""
import ctypes, json, os, signal, socket, stat, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
libc.syscall.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ARGS = json.loads(sys.argv[1])
tried, escaped = [], []

def attempt(what, worked, detail=""):
    tried.append(what)
    print(what, "->", "WORKED" if worked else "failed", detail)
    if worked:
        escaped.append(what)

def must_raise(what, fn, *args):
    try:
        fn(*args)
    except (OSError, subprocess.SubprocessError) as exc:
        attempt(what, False, "%s %s" % (type(exc).__name__, exc))
    else:
        attempt(what, True)

def libc_fails(what, ret):
    err = ctypes.get_errno()
    attempt(what, ret >= 0, os.strerror(err) if ret < 0 else "")

def run(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=5,
                           stdin=subprocess.DEVNULL)
    except OSError as exc:
        return None, str(exc)
    return p.returncode, (p.stdout + p.stderr).strip()[-300:]

def command_fails(argv):
    code, out = run(argv)
    attempt(" ".join(argv), code == 0, out)

MS_RDONLY, MS_NOSUID, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 32, 4096, 16384
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
"""

EPILOGUE = r"""
except BaseException as exc:  # an attempt that stops half-way proves nothing
    attempt("the attempt finished", True, repr(exc))
print("RESULT", len(tried), ("ESCAPED: " + "; ".join(escaped)) if escaped else "blocked")
"""


def attempt_program(code: str) -> str:
    return PRELUDE + "try:\n" + textwrap.indent(code.strip("\n"), "    ") + "\n" + EPILOGUE


ATTEMPTS: dict[str, str] = {
    "umount the mounts under it": r"""
targets = ["/tmp", "/var/tmp", "/home", "/root", "/", "/usr", "/proc", "/dev", "/etc/passwd",
           "/etc", *ARGS["prefixes"]]
for target in targets:
    for flags in (0, 1, 2):  # plain, MNT_FORCE, MNT_DETACH
        libc_fails("umount2(%s, %d)" % (target, flags), libc.umount2(target.encode(), flags))
command_fails(["umount", "-l", "/tmp"])
for path in ARGS["secrets"]:  # what an unmount would have revealed
    must_raise("read " + path + " afterwards", lambda p=path: open(p, "rb").read())
""",
    "remount read-write": r"""
for target in ["/", "/usr", "/etc/passwd", "/dev", *ARGS["prefixes"]]:
    t = target.encode()
    libc_fails("remount rw " + target, libc.mount(None, t, None, MS_REMOUNT, None))
    libc_fails("bind remount rw " + target,
               libc.mount(None, t, None, MS_REMOUNT | MS_BIND, None))
command_fails(["mount", "-o", "remount,rw", "/usr"])
command_fails(["mount", "-o", "remount,rw", "/"])
must_raise("write in /usr afterwards", open, "/usr/ponder-escape", "w")
""",
    "bind and mount over": r"""
os.makedirs("/tmp/m", exist_ok=True)
for src, dst in [("/tmp", "/usr"), ("/tmp", "/etc"), ("/proc", "/tmp/m"), ("/", "/tmp/m")]:
    libc_fails("bind %s on %s" % (src, dst),
               libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None))
for fstype, dst in [("tmpfs", "/usr"), ("proc", "/tmp/m"), ("sysfs", "/tmp/m"),
                    ("devpts", "/tmp/m")]:
    libc_fails("mount %s on %s" % (fstype, dst),
               libc.mount(fstype.encode(), dst.encode(), fstype.encode(), 0, None))
command_fails(["mount", "--bind", "/tmp", "/usr"])
command_fails(["mount", "-t", "tmpfs", "none", "/tmp/m"])
# the new mount API and the root-changing calls
libc_fails("fsopen(tmpfs)", libc.syscall(430, b"tmpfs", 0))
libc_fails("open_tree(/, OPEN_TREE_CLONE)", libc.syscall(428, -100, b"/", 1))
libc_fails("pivot_root(/tmp, /tmp)", libc.syscall(155, b"/tmp", b"/tmp"))
libc_fails("chroot(/tmp)", libc.chroot(b"/tmp"))
""",
    "unshare a user namespace, then mount": r"""
uid, gid = os.getuid(), os.getgid()
ret = libc.unshare(CLONE_NEWUSER)
libc_fails("unshare(CLONE_NEWUSER)", ret)
if ret == 0:  # it worked: use it, as the escape did
    for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % uid),
                       ("gid_map", "0 %d 1" % gid)):
        try:
            with open("/proc/self/" + name, "w") as fh:
                fh.write(text)
        except OSError as exc:
            print("cannot write", name, exc)
    libc_fails("unshare(CLONE_NEWNS) in it", libc.unshare(CLONE_NEWNS))
    libc_fails("umount2(/tmp) in it", libc.umount2(b"/tmp", 2))
libc_fails("unshare(CLONE_NEWNS)", libc.unshare(CLONE_NEWNS))
libc_fails("unshare(CLONE_NEWNET)", libc.unshare(CLONE_NEWNET))
libc_fails("unshare(CLONE_NEWUSER|CLONE_NEWNS)", libc.unshare(CLONE_NEWUSER | CLONE_NEWNS))
command_fails(["unshare", "--user", "--map-root-user", "--mount", "umount", "-l", "/tmp"])
command_fails(["unshare", "--user", "--map-root-user", "true"])
""",
    "setuid binaries": r"""
status = open("/proc/self/status").read()
attempt("no_new_privs is off", "NoNewPrivs:\t1" not in status)
for path in ["/", "/usr", "/tmp", *ARGS["prefixes"]]:
    attempt("setuid honoured on " + path, not os.statvfs(path).f_flag & os.ST_NOSUID)
found = []
for top in ("/usr/bin", "/usr/sbin", "/usr/lib"):
    for root, dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_ISUID:
                found.append(p)
print("setuid binaries:", found)
me = os.getuid()
for p in found[:12]:  # run each; watch its effective uid while it lives
    try:
        proc = subprocess.Popen([p], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError as exc:
        attempt("setuid takes effect: " + p, False, str(exc))
        continue
    seen = set()
    for _ in range(20):
        try:
            for line in open("/proc/%d/status" % proc.pid):
                if line.startswith("Uid:"):
                    seen.update(int(x) for x in line.split()[1:])
        except OSError:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    attempt("setuid takes effect: " + p, seen - {me} != set(), str(sorted(seen)))
code, out = run(["su", "-c", "id -u", "root"])
attempt("su -c 'id -u' root", code == 0 or out.strip() == "0", out)
code, out = run(["newgrp", "root"])
attempt("newgrp root", code == 0, out)
# a setuid copy of its own: nosuid /tmp, and its own uid anyway
import shutil
shutil.copy("/usr/bin/id", "/tmp/id")
os.chmod("/tmp/id", 0o4755)
code, out = run(["/tmp/id", "-u"])
attempt("copied setuid file runs as someone else", out != str(me), out)
""",
    "join namespaces through /proc/*/ns": r"""
for base in ("/proc/self/ns", "/proc/1/ns"):
    try:
        names = os.listdir(base)
    except OSError as exc:
        attempt("list " + base, False, str(exc))
        continue
    for name in names:
        try:
            fd = os.open(base + "/" + name, os.O_RDONLY)
        except OSError as exc:
            attempt("open %s/%s" % (base, name), False, str(exc))
            continue
        libc_fails("setns(%s/%s)" % (base, name), libc.setns(fd, 0))
        os.close(fd)
""",
    "ptrace its parent, read its memory and descriptors": r"""
for pid in (1, os.getppid(), ARGS["worker_pid"]):
    libc_fails("ptrace(PTRACE_ATTACH, %d)" % pid, libc.ptrace(16, pid, None, None))
    libc_fails("ptrace(PTRACE_SEIZE, %d)" % pid, libc.ptrace(0x4206, pid, None, None))
must_raise("read /proc/1/mem", lambda: open("/proc/1/mem", "rb").read(1))
must_raise("list /proc/1/fd (the status pipe)", os.listdir, "/proc/1/fd")
must_raise("read /proc/1/environ", lambda: open("/proc/1/environ", "rb").read())
must_raise("readlink /proc/1/root", os.readlink, "/proc/1/root")
must_raise("open /proc/1/fd/3 for writing", open, "/proc/1/fd/3", "wb")
""",
    "read planted secrets": r"""
for path in ARGS["secrets"]:
    must_raise("read " + path, lambda p=path: open(p, "rb").read())
marker, found = ARGS["marker"].encode(), []
skip = ("/proc", "/usr", "/dev", *ARGS["prefixes"])
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs
               if not any(os.path.join(root, d) == s or os.path.join(root, d).startswith(s + "/")
                          for s in skip)]
    for name in files:
        try:
            with open(os.path.join(root, name), "rb") as fh:
                if marker in fh.read(1 << 20):
                    found.append(os.path.join(root, name))
        except OSError:
            pass
attempt("find the secret anywhere it can read", bool(found), str(found))
""",
    "write outside /tmp": r"""
name = ARGS["name"]
for d in ["/", "/etc", "/usr", "/usr/local", "/dev", "/dev/shm", "/proc", "/var/tmp", "/root",
          "/home", *ARGS["prefixes"], *ARGS["host_dirs"]]:
    must_raise("create a file in " + d, open, os.path.join(d, name), "x")
    must_raise("mkdir in " + d, os.mkdir, os.path.join(d, name + ".d"))
""",
    "reach the host's network": r"""
for host, port in [("127.0.0.1", ARGS["port"]), ("127.0.0.1", 5432), ("127.0.0.1", 6379),
                   ("192.0.2.1", 80)]:
    s = socket.socket()
    s.settimeout(3)
    must_raise("connect %s:%d" % (host, port), s.connect, (host, port))
s = socket.socket(socket.AF_INET6)
s.settimeout(3)
must_raise("connect [::1]:%d" % ARGS["port"], s.connect, ("::1", ARGS["port"]))
u = socket.socket(socket.AF_UNIX)
must_raise("connect the host's abstract socket", u.connect, "\0" + ARGS["abstract"])
u = socket.socket(socket.AF_UNIX)
must_raise("connect the host's socket file", u.connect, ARGS["unix_path"])
must_raise("open a packet socket", socket.socket, socket.AF_PACKET, socket.SOCK_RAW)
must_raise("send UDP out",
           lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 53)))
""",
    "signal the worker and pid 1": r"""
must_raise("signal the worker", os.kill, ARGS["worker_pid"], 0)
must_raise("kill the canary", os.kill, ARGS["canary_pid"], signal.SIGKILL)
os.kill(1, signal.SIGKILL)  # dropped by the kernel: pid 1 ignores it from inside
# Taken, the signal would be pending on pid 1 or pid 1 dying (and with it this whole
# namespace, this program too: no RESULT line, which fails the test); dropped, it
# leaves no trace. Read at once, no guessed wait.
try:
    init = dict(line.rstrip("\n").split(":\t", 1) for line in open("/proc/1/status")
                if ":\t" in line)
except OSError:
    init = None
kill_bit = 1 << (signal.SIGKILL - 1)
pending = init and (int(init["ShdPnd"], 16) | int(init["SigPnd"], 16)) & kill_bit
attempt("kill pid 1", init is None or init["State"][0] in "ZX" or bool(pending),
        str(init and init["State"]))
""",
    "keep capabilities or host namespaces": r"""
status = dict(line.rstrip("\n").split(":\t", 1) for line in open("/proc/self/status")
              if ":\t" in line)
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    attempt(key + " not empty", int(status[key], 16) != 0, status[key])
attempt("uid 0", os.getuid() == 0 or os.geteuid() == 0, str(os.getuid()))
for ns, inode in ARGS["host_ns"].items():
    attempt("in the host's %s namespace" % ns, os.stat("/proc/self/ns/" + ns).st_ino == inode)
extra = []
for fd in [int(fd) for fd in os.listdir("/proc/self/fd")]:
    try:
        if fd > 2:
            extra.append((fd, os.readlink("/proc/self/fd/%d" % fd)))
    except OSError:
        pass  # the descriptor that listed the directory, closed since
attempt("inherited descriptors", bool(extra), str(extra))
""",
    "devices and kernel knobs": r"""
must_raise("mknod /tmp/mem", os.mknod, "/tmp/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1))
for dev in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda"):
    must_raise("open " + dev, open, dev, "rb")
for path in ("/proc/sysrq-trigger", "/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern",
             "/proc/sys/user/max_user_namespaces", "/sys/kernel/uevent_helper"):
    must_raise("write " + path, lambda p=path: open(p, "w").write("1"))
libc_fails("sethostname", libc.sethostname(b"x", 1))
libc_fails("finit_module", libc.syscall(313, 0, b"", 0))
libc_fails("reboot(CAD_OFF)", libc.reboot(0))
libc_fails("setuid(0)", libc.setuid(0))
""",
}

# The two runs start side by side and cannot signal each other (that is the point), so
# neither waits a guessed time for the other: the writer holds its file until a second
# after a shared wall-clock moment (ARGS["until"]), and the searcher searches again and
# again until that moment. Whatever the stagger of their starts (up to seconds), some
# pass runs while the file exists; the test checks that one did.
OTHER_RUN = r"""
import json, os, sys, time
ARGS = json.loads(sys.argv[1])
with open("/tmp/other-run-secret", "w") as fh:
    fh.write(ARGS["marker"])
print("wrote", time.time())
while time.time() < ARGS["until"] + 1:
    time.sleep(0.05)
print("done", time.time())
"""

SEARCH_OTHER_RUN = r"""
marker, found, unlisted, passes = ARGS["marker"].encode(), {}, {}, []
while True:
    places = ["/tmp", "/dev/shm", "/var/tmp", ARGS["host_tmp"]]
    places += ["/proc/%s/root/tmp" % p for p in os.listdir("/proc") if p.isdigit()]
    places += ["/proc/%s/cwd" % p for p in os.listdir("/proc") if p.isdigit()]
    for place in places:
        hits = found.setdefault(place, [])
        try:
            names = os.listdir(place)
        except OSError as exc:
            unlisted[place] = str(exc)
            continue
        for name in names:
            try:
                with open(os.path.join(place, name), "rb") as fh:
                    if marker in fh.read(1 << 16):
                        hits.append(os.path.join(place, name))
            except OSError:
                pass
    passes.append(time.time())
    if passes[-1] >= ARGS["until"]:
        break
    time.sleep(0.1)
for place, error in unlisted.items():
    attempt("list " + place, False, error)
for place, hits in found.items():
    attempt("find the other run's file in " + place, bool(hits), str(hits))
print("searched", *passes)
"""


@dataclasses.dataclass
class Worker:
    """How the worker runs: as root in this process, or through ``python -m
    ponder.sandbox`` under ``python`` as ``uid`` with ``home`` as its home."""

    name: str
    python: str | None  # None: in this process
    uid: int
    home: Path
    project: Path


@pytest.fixture(scope="module")
def host() -> Iterator[dict[str, Any]]:
    """What the host holds for the sandbox to reach for: secrets, sockets, a canary."""
    status = isolation_status()
    assert status.available, f"the sandbox cannot isolate on this machine: {status.reason}"
    assert os.path.exists(SYSTEM_PYTHON), f"{SYSTEM_PYTHON} is needed (apt-get install python3)"
    marker = "ponder-escape-" + secrets.token_hex(8)
    base = Path(tempfile.mkdtemp(prefix="ponder-escapes-"))
    base.chmod(0o755)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    listener6 = socket.create_server(("::1", port), family=socket.AF_INET6)
    listener6.setblocking(False)
    abstract = marker
    abstract_sock = socket.socket(socket.AF_UNIX)
    abstract_sock.bind("\0" + abstract)
    abstract_sock.listen()
    abstract_sock.setblocking(False)
    unix_path = str(base / "host.sock")
    unix_sock = socket.socket(socket.AF_UNIX)
    unix_sock.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix_sock.listen()
    unix_sock.setblocking(False)
    home_secret = Path.home() / f".{marker}"
    home_secret.write_text(marker)
    home_secret.chmod(0o600)
    try:
        yield {
            "marker": marker,
            "base": base,
            "port": port,
            "abstract": abstract,
            "unix_path": unix_path,
            "home_secret": str(home_secret),
            "sockets": [listener, listener6, abstract_sock, unix_sock],
        }
    finally:
        home_secret.unlink()
        for sock in (listener, listener6, abstract_sock, unix_sock):
            sock.close()
        shutil.rmtree(base, ignore_errors=True)


def make_worker(name: str, host: dict[str, Any]) -> Worker:
    if name == "root":
        return Worker(name, None, 0, Path.home(), PROJECT)
    unprivileged = name == "unprivileged"
    uid = WORKER_UID if unprivileged and os.geteuid() == 0 else os.geteuid()
    home = host["base"] / name
    project = home / "project"
    (project / "ponder").mkdir(parents=True)
    for module in ("__init__.py", "errors.py", "sandbox.py"):
        shutil.copy(PROJECT / "ponder" / module, project / "ponder" / module)
    (home / "secret.txt").write_text(host["marker"])
    (project / "secret.txt").write_text(host["marker"])
    for path in [home, *home.rglob("*")]:
        os.chown(path, uid, uid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    return Worker(name, SYSTEM_PYTHON, uid, home, project)


def run_jobs(worker: Worker, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if worker.python is None:

        async def run_all() -> list[SandboxResult]:
            return list(
                await asyncio.gather(
                    *(
                        run_python_async(
                            job["code"], limits=SandboxLimits(**job["limits"]), argv=job["argv"]
                        )
                        for job in jobs
                    )
                )
            )

        return [dataclasses.asdict(r) for r in asyncio.run(run_all())]
    argv = [worker.python, "-m", "ponder.sandbox"]
    if worker.uid != os.geteuid():
        argv = ["setpriv", f"--reuid={worker.uid}", f"--regid={worker.uid}", "--clear-groups"]
        argv += ["--", worker.python, "-m", "ponder.sandbox"]
    env = {"PYTHONPATH": str(worker.project), "HOME": str(worker.home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        argv,
        input=json.dumps({"jobs": jobs}),
        capture_output=True,
        text=True,
        env=env,
        cwd=worker.project,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["uid"] == worker.uid
    assert out["status"]["available"], out["status"]["reason"]
    results: list[dict[str, Any]] = out["results"]
    return results


def host_ns() -> dict[str, int]:
    return {ns: os.stat(f"/proc/self/ns/{ns}").st_ino for ns in ("user", "mnt", "net", "pid")}


def outcome(attempt: str, result: dict[str, Any]) -> tuple[int, str]:
    """(operations tried, "blocked" or what escaped) from an attempt's output."""
    lines = [line for line in result["stdout"].splitlines() if line.startswith("RESULT ")]
    assert lines, (
        f"{attempt!r} did not finish (killed by {result['killed_by']}, after "
        f"{result['wall_s']:.1f} s): {result['stderr'][-2000:]}"
    )
    _, count, verdict = lines[-1].split(" ", 2)
    return int(count), verdict


WORKERS = ["root", "root-system-python", "unprivileged"]


@pytest.mark.parametrize("worker_name", WORKERS)
def test_every_escape_fails(worker_name: str, host: dict[str, Any]) -> None:
    if worker_name.startswith("root") and os.geteuid() != 0:
        pytest.skip("the worker can run as root only when the tests do")
    worker = make_worker(worker_name, host)
    name = "escape-" + secrets.token_hex(4)
    host_dirs = [str(worker.home), str(worker.project), str(host["base"]), str(PROJECT)]
    canary = subprocess.Popen(
        ["sleep", "60"], user=worker.uid if worker.python else None, start_new_session=True
    )
    # the interpreter's install, read-only in the sandbox (the system one is under /usr)
    prefixes = [os.path.realpath(sys.base_prefix)] if worker.python is None else []
    args = {
        "marker": host["marker"],
        "name": name,
        "prefixes": prefixes,
        "secrets": [
            host["home_secret"],
            str(worker.home / "secret.txt"),
            str(worker.project / "secret.txt"),
            str(worker.project / "ponder" / "sandbox.py"),
            str(PROJECT / "README.md"),
            "/etc/shadow",
            "/root/.bashrc",
        ],
        "host_dirs": host_dirs,
        "port": host["port"],
        "abstract": host["abstract"],
        "unix_path": host["unix_path"],
        "worker_pid": os.getpid(),
        "canary_pid": canary.pid,
        "host_ns": host_ns(),
        "host_tmp": str(host["base"]),
    }
    jobs = [
        {"code": attempt_program(code), "argv": [json.dumps(args)], "limits": LIMITS}
        for code in ATTEMPTS.values()
    ]
    try:
        results = run_jobs(worker, jobs)
        # another run's files: one run writes a secret and holds it, one looks for it
        # (5 s for both to start; both end within the 10 s wall clock)
        pair = json.dumps({**args, "until": time.time() + 5})
        other = run_jobs(
            worker,
            [
                {"code": OTHER_RUN, "argv": [pair], "limits": LIMITS},
                {"code": attempt_program(SEARCH_OTHER_RUN), "argv": [pair], "limits": LIMITS},
            ],
        )
        assert canary.poll() is None, "the sandbox killed a host process"
    finally:
        canary.kill()
        canary.wait()
    writer = other[0]["stdout"].split()
    wrote, done = float(writer[1]), float(writer[3])
    [searched] = [line for line in other[1]["stdout"].splitlines() if line.startswith("searched")]
    passes = [float(t) for t in searched.split()[1:]]
    assert any(wrote < t < done for t in passes), "no search ran while the other run's file existed"

    outcomes = dict(zip([*ATTEMPTS, "read another run's files"], [*results, other[1]], strict=True))
    tried = []
    for attempt, result in outcomes.items():
        count, verdict = outcome(attempt, result)
        tried.append((attempt, count, verdict))
        assert count > 0, f"{attempt}: nothing was tried"
    escaped = [(attempt, verdict) for attempt, _, verdict in tried if verdict != "blocked"]
    assert escaped == [], f"as {worker_name}: {escaped}"

    # what the sandbox could not check from inside
    for sock in host["sockets"]:
        with pytest.raises(BlockingIOError):
            sock.accept()  # nobody connected
    for directory in [*host_dirs, "/", "/etc", "/usr", "/usr/local", "/var/tmp", "/root"]:
        assert not Path(directory, name).exists(), f"{directory}/{name} was written"
        assert not Path(directory, name + ".d").exists()
    assert not list(Path("/tmp").glob("other-run-secret*"))
    print(
        f"\n{worker_name} (uid {worker.uid}): {len(tried)} escapes tried, "
        f"{sum(c for _, c, _ in tried)} operations, {len(escaped)} succeeded"
    )
