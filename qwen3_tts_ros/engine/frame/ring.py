"""The launch-ahead ring: up to `size` replays in flight, each followed by a copy of its codes into a device
slot and a non-blocking copy into a pinned host slot, with a CUDA event. The host reads c0 (EOS) from the host
copy once the event completed (the only wait), and hands frames out as clones of the device slot: on the
generating stream, or on a consumer's stream ordered after that replay only. A slot is rewritten by the launch
`size` replays later, which the host enqueues only after every frame of its replay was handed out; with a
consumer stream that rewrite waits for an event recorded after the clones. On CPU the host ring is the device
ring and a replay is an eager call (no events).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Launch:
    """One replay in flight: its ring slot, and its completion event on CUDA or its wall time on CPU."""

    slot: int
    done: torch.cuda.Event | None
    wall_ms: float


class LaunchRing:
    def __init__(self, frames: torch.Tensor, size: int):
        """frames: the state's (frames_per_replay, 16) buffer that one replay writes."""
        self.frames, self.size = frames, size
        self.on_cuda = frames.device.type == "cuda"
        self.device_ring = torch.zeros(size, *frames.shape, device=frames.device, dtype=frames.dtype)
        self.host_ring = (
            torch.zeros(self.device_ring.shape, dtype=frames.dtype, pin_memory=True)
            if self.on_cuda
            else self.device_ring
        )
        # Per slot: the event after the clones of its frames on a consumer stream, which its rewrite must
        # wait for (None: cloned on the generating stream itself, in order).
        self._slot_read: list[torch.cuda.Event | None] = [None] * size
        self.last_read: torch.cuda.Event | None = None  # after the latest clone on a consumer stream

    def launch(self, replay: int, run_replay: Callable[[], None]) -> Launch:
        """Run (enqueue, on CUDA) one replay and the copies of its codes into slot replay % size."""
        slot = replay % self.size
        start = time.perf_counter()
        run_replay()
        read = self._slot_read[slot]
        if read is not None:  # after the replay: only the copy into the slot has to wait for that read
            torch.cuda.current_stream(self.frames.device).wait_event(read)
            self._slot_read[slot] = None
        self.device_ring[slot].copy_(self.frames)
        done = None
        if self.on_cuda:
            self.host_ring[slot].copy_(self.frames, non_blocking=True)
            done = torch.cuda.Event(enable_timing=True)
            done.record()
        return Launch(slot, done, (time.perf_counter() - start) * 1000)

    def code0s(self, launch: Launch) -> list[int]:
        """c0 of each frame of `launch`, once it completed (waits for its event: the only host wait)."""
        if launch.done is not None:
            launch.done.synchronize()
        return self.host_ring[launch.slot, :, 0].tolist()

    def hand_out(self, launch: Launch, index: int, consumer: torch.cuda.Stream | None) -> torch.Tensor:
        """Frame `index` of `launch` as a (16,) clone, made on `consumer` (ordered after this replay only)."""
        if consumer is None:
            return self.device_ring[launch.slot, index].clone()
        consumer.wait_event(launch.done)
        with torch.cuda.stream(consumer):
            frame = self.device_ring[launch.slot, index].clone()
        self.last_read = self._slot_read[launch.slot] = torch.cuda.Event()
        self.last_read.record(consumer)
        return frame

    def finish(self) -> None:
        """Wait for the clones still queued on a consumer stream."""
        if self.last_read is not None:
            self.last_read.synchronize()
            self.last_read = None
