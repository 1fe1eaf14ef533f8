"""Finding a job's processes again: process-group leader pid + its start time, from /proc.

Why the start time: after a server restart the recorded pid may belong to an unrelated process
(pids are reused); the pair (pid, start time in clock ticks since boot) names one process for good.
A job runs in its own session, so its process group id is the leader's pid and one `killpg` reaches
the launcher, `accelerate launch` and every training rank.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[19]


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def leader_alive(pid: int, started: str | None) -> bool:
    """The recorded leader is still running (same pid and start time, not a zombie)."""
    return started is not None and start_time(pid) == started and not is_zombie(pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def our_group(pid: int, started: str | None) -> bool:
    """The group `pid` still holds our job's processes: the leader is ours, or gone while members
    remain (a live pid cannot be reused as a group id, so members of group `pid` are ours)."""
    current = start_time(pid)
    if current is not None and current != started:
        return False  # the pid now names another process (and so another group)
    return group_alive(pid)


def group_members(pgid: int) -> dict[int, int]:
    """pid -> parent pid of every live process in group `pgid` (from /proc)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members[int(entry.name)] = int(fields[1])
    return members


def signal_workers(pgid: int, sig: signal.Signals) -> int:
    """Signal the leaves of the group (the training ranks), not the launchers above them.

    Why: `accelerate launch` answers SIGTERM by terminating its child and SIGKILLing it 5 s later,
    which can cut a rank's SIGTERM checkpoint short. A rank that exits lets its launchers exit.
    """
    members = group_members(pgid)
    parents = set(members.values())
    sent = 0
    for pid in members:
        if pid not in parents:
            try:
                os.kill(pid, sig)
                sent += 1
            except ProcessLookupError:
                pass
    return sent


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def last_error_line(log: Path, returncode: int | None) -> str:
    """The line that says why a job died: the CLI's `error: ...`, else the last exception line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[:500]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) or head.startswith("Killed"):
            return line[:500]
    code = f"exited with code {returncode}" if returncode is not None else "the job's processes are gone"
    if returncode is not None and returncode < 0:
        code = f"killed by signal {signal.Signals(-returncode).name}"
    return f"{code}; last log line: {lines[-1][:300]}" if lines else code
