"""no_cyclic_gc: what each CUDA-graph capture runs inside (the GPU captures themselves: the gpu tests)."""

import gc
import weakref

import pytest

from qwen3_tts_ros.engine.cuda_capture import no_cyclic_gc


class _Node:
    pass


def _dropped_cycle() -> weakref.ref:
    node = _Node()
    node.self = node  # only the cyclic GC frees it
    return weakref.ref(node)


def test_collects_first_then_keeps_the_gc_off_and_restores_it():
    assert gc.isenabled()
    before = _dropped_cycle()
    with no_cyclic_gc():
        assert before() is None  # collected before the block
        assert not gc.isenabled()
        during = _dropped_cycle()
        assert during() is not None
    assert gc.isenabled()
    with pytest.raises(RuntimeError), no_cyclic_gc():
        raise RuntimeError("capture failed")
    assert gc.isenabled()  # restored after a failed capture too
    gc.disable()
    try:
        with no_cyclic_gc():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
