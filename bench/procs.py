"""Process helpers for benchmarks: start, wait for readiness, measure peak RSS of a tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def peak_rss_mib(pid: int) -> float:
    """Sum of VmHWM (peak resident set) over the process tree, in MiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=fh, stderr=fh)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return [name, *stat.rsplit(")", 1)[1].split()]


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """CPU time (user + system) used so far by ``pid`` (and its live descendants)."""
    total = 0.0
    for p in tree_pids(pid) if tree else [pid]:
        f = _stat_fields(p)
        if f is not None:
            # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
            total += (int(f[12]) + int(f[13])) / _TICKS
    return total


def service_cpu_seconds(name: str) -> float:
    """CPU time used so far by every process called ``name`` (e.g. ``postgres``), including
    exited children that the top process reaped (Postgres backends come and go)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        f = _stat_fields(int(entry.name))
        if f is None or not f[0].startswith(name):
            continue
        total += (int(f[12]) + int(f[13])) / _TICKS
        parent = _stat_fields(int(f[2]))
        if parent is None or not parent[0].startswith(name):  # the top process
            total += (int(f[14]) + int(f[15])) / _TICKS
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS
