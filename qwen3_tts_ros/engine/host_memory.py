"""Host heap kept by the C library after a model is released.

Loading a model allocates its host-side buffers before the previous model's are freed, so glibc's heap grows
and keeps the freed part mapped: on an H200 the node's RSS rose 44-52 MB at the first reload and swung by
50 MB with later ones while the heap in use stayed flat (docs/RELIABILITY.md, node-defaults endurance).
malloc_trim(0) gives the free pages back to the OS.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc():
    """This process's C library if it has malloc_trim (glibc), else None (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    c = ctypes.CDLL(name)
    if not hasattr(c, "malloc_trim"):
        return None
    c.malloc_trim.argtypes = [ctypes.c_size_t]
    c.malloc_trim.restype = ctypes.c_int
    return c


def release_free_heap() -> bool | None:
    """glibc's malloc_trim(0): return the free memory of every heap arena to the OS. True if some was
    released, False if none was free, None where the C library has no malloc_trim."""
    c = libc()
    return None if c is None else bool(c.malloc_trim(0))
