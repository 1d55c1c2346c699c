"""Resident memory of a process and its descendants, from /proc/<pid>/status."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


def _status_kb(pid: int, field: str) -> int:
    """A `VmRSS:   1234 kB`-style field of /proc/<pid>/status, in kB (0 when gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (by scanning /proc for parent pids)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class RssMonitor:
    """Samples the RSS of a process tree in a thread, keeping the peak of the sum."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_tree_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> RssMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def tree_kb(self) -> int:
        """VmRSS of the process plus all its descendants now."""
        return sum(_status_kb(p, "VmRSS") for p in [self.pid, *descendants(self.pid)])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_tree_kb = max(self.peak_tree_kb, self.tree_kb())
            self._stop.wait(self.interval)

    def sample(self) -> dict[str, float]:
        """MB now: the process (rss), its tree (tree_rss), the kernel's high-water mark of the process
        (hwm) and the sampled peak of the tree's sum."""
        tree = self.tree_kb()
        self.peak_tree_kb = max(self.peak_tree_kb, tree)
        return {"rss_mb": _status_kb(self.pid, "VmRSS") / 1024, "tree_rss_mb": tree / 1024,
                "hwm_mb": _status_kb(self.pid, "VmHWM") / 1024, "peak_tree_mb": self.peak_tree_kb / 1024}

    def peak_mb(self) -> float:
        """The larger of the process's VmHWM and the sampled peak of the tree."""
        sample = self.sample()
        return max(sample["hwm_mb"], sample["peak_tree_mb"])
