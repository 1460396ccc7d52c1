"""Host memory of a process, for the endurance tests and benchmarks (Linux: /proc)."""

from __future__ import annotations


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of `pid` now (VmRSS; what the kernel counts as the process's RAM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
