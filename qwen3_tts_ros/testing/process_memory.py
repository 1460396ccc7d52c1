"""Host memory of a process, for the endurance tests and benchmarks (Linux: /proc, glibc's malloc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

from qwen3_tts_ros.engine import host_memory

# /proc/<pid>/status fields reported by memory_status: the resident set split into anonymous memory (heap,
# arenas, pinned buffers), file-backed pages (shared libraries touched, e.g. GPU kernels loaded lazily from
# their .so files) and shared memory, plus the number of threads.
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")
MALLINFO2_FIELDS = (
    "arena",  # bytes of the heap and arenas obtained with sbrk/mmap (not the big mmapped chunks)
    "ordblks",  # free chunks
    "smblks",
    "hblks",  # chunks mmapped on their own
    "hblkhd",  # bytes in them
    "usmblks",
    "fsmblks",
    "uordblks",  # bytes allocated (in use)
    "fordblks",  # bytes free inside the arenas (retained, not given back to the OS)
    "keepcost",  # releasable at the top of the main heap
)


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of `pid` now (VmRSS; what the kernel counts as the process's RAM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def memory_status(pid: int | str = "self") -> dict[str, int]:
    """STATUS_FIELDS of `pid`: the Rss* and Vm* ones in bytes, Threads as a count (missing ones left out)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in STATUS_FIELDS:
                number = int(rest.split()[0])
                values[name] = number if name == "Threads" else number * 1024
    return values


def mapping_count(pid: int | str = "self") -> int:
    """Number of memory mappings of `pid` (a count that climbs means mmap-based growth: arenas, big
    allocations, pinned buffers)."""
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for _ in f)


def process_age_s(pid: int | str = "self") -> float:
    """Seconds since `pid` started (its start time in /proc/<pid>/stat against /proc/uptime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime in ticks


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]


@functools.cache
def _glibc():
    """This process's C library if it is glibc >= 2.33 (mallinfo2), else None."""
    libc = host_memory.libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


def mallinfo2() -> dict[str, int] | None:
    """glibc's malloc statistics summed over all arenas (bytes or counts, see MALLINFO2_FIELDS); None
    where the C library is not glibc >= 2.33."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name in MALLINFO2_FIELDS}


def malloc_trim() -> bool | None:
    """glibc's malloc_trim(0) (engine.host_memory, which the engine calls when it releases a model): True if
    some free heap was released; None where unavailable. RSS before / after tells freed-but-retained heap
    from live memory."""
    return host_memory.release_free_heap()
