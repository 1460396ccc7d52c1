"""qwen3_tts_ros.testing.process_memory: /proc figures and glibc malloc statistics (the endurance probes)."""

import pytest

from qwen3_tts_ros.testing import process_memory as pm

ALLOCATIONS, SIZE = 400, 40_000  # 16 MB in blocks below glibc's mmap threshold (128 KiB): arena memory


def test_memory_status_splits_the_resident_set():
    status = pm.memory_status()
    assert {"VmRSS", "RssAnon", "RssFile", "Threads"} <= set(status)
    # VmRSS is RssAnon + RssFile + RssShmem; read at one instant (one read of the file), so exactly.
    assert status["VmRSS"] == status["RssAnon"] + status["RssFile"] + status.get("RssShmem", 0)
    assert status["Threads"] >= 1 and pm.mapping_count() > 10


def test_process_age_counts_from_the_start_of_this_process():
    import time

    started = time.monotonic() - pm.process_age_s()
    time.sleep(0.2)
    # The start time does not move (bound: /proc/uptime has 10 ms resolution, the start time one clock tick).
    assert abs((time.monotonic() - pm.process_age_s()) - started) < 0.1
    assert pm.process_age_s() > 0


@pytest.mark.skipif(pm.mallinfo2() is None, reason="needs glibc >= 2.33")
def test_mallinfo2_sees_blocks_allocated_and_freed():
    before = pm.mallinfo2()["uordblks"]
    blocks = [bytearray(SIZE) for _ in range(ALLOCATIONS)]
    during = pm.mallinfo2()["uordblks"]
    del blocks
    after = pm.mallinfo2()["uordblks"]
    # Bound: the blocks themselves (16 MB); other allocations of this process in between are far smaller.
    assert during - before >= ALLOCATIONS * SIZE * 0.9, (before, during)
    assert during - after >= ALLOCATIONS * SIZE * 0.9, (during, after)
    assert pm.malloc_trim() in (True, False)


@pytest.mark.skipif(pm.malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_release_free_heap_returns_freed_blocks_to_the_os():
    """What the engine does when it releases a model (engine/host_memory.py): heap freed below a live block
    stays resident until malloc_trim hands its pages back."""
    blocks = [bytearray(b"x" * SIZE) for _ in range(ALLOCATIONS)]  # written: resident
    pin = bytearray(b"x" * SIZE)  # above them on the heap: glibc cannot shrink the heap's top by itself
    del blocks
    kept = pm.memory_status()["RssAnon"]
    assert pm.malloc_trim() is True
    released = kept - pm.memory_status()["RssAnon"]
    # Bound: most of the 16 MB freed (pages still holding other live chunks of this process stay).
    assert released >= ALLOCATIONS * SIZE * 0.5, (kept, released)
    del pin
