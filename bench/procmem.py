"""Resident memory of a process tree the bench started, from /proc (Linux only; no extra packages).

The servers are started in their own session (`start_new_session=True`), so "the tree" is every
process whose session id is the server's pid, plus any descendant that left the session.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int, proc: Path = PROC) -> tuple[int, int] | None:
    """(parent pid, session id) of `pid`, or None if it is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: parse after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3])


def rss_kib(pid: int, proc: Path = PROC) -> int | None:
    """VmRSS of one process in KiB, None if it is gone (or a zombie without memory)."""
    try:
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def tree_pids(root: int, proc: Path = PROC) -> list[int]:
    """`root` and every process in its session or descended from it."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name), proc)
        if fields is None:
            continue
        parents[int(entry.name)] = fields[0]
        if fields[1] == root:
            members.add(int(entry.name))
    if root in parents:
        members.add(root)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return sorted(members)


def tree_rss_kib(root: int, proc: Path = PROC) -> int | None:
    """The summed VmRSS of `root`'s tree in KiB (None when `root` is gone)."""
    pids = tree_pids(root, proc)
    if root not in pids:
        return None
    return sum(rss_kib(pid, proc) or 0 for pid in pids)
