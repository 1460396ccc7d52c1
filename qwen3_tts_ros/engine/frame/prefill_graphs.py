"""Prefill buckets: the prompt padded to the smallest bucket >= P and run as a captured graph (talker.py says
why padding is harmless). Off by default in the library: a padded forward gives the real positions the same
values only as far as the matmul kernels chosen for the padded size round the same way, which
bench/framegraph_smoke.py checks on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .state import FrameState


@dataclass
class _Bucket:
    embeds: torch.Tensor  # (1, size, H) static padded prompt
    graph: torch.cuda.CUDAGraph | None = None
    replays: int = 0


class PrefillGraphs:
    """The prefill of each utterance: through a bucket's graph where one fits, else eagerly (counted)."""

    def __init__(self, state: FrameState, sizes: tuple[int, ...]):
        self.state = state
        hidden = state.past_hidden.shape[-1]
        self._buckets = {
            size: _Bucket(torch.zeros(1, size, hidden, device=state.device, dtype=state.dtype))
            for size in sorted(set(sizes))
        }
        self.uncaptured = 0  # prefills not run as a captured graph
        self.uncaptured_lengths: set[int] = set()  # their prompt lengths (each new one: new eager shapes)

    def units(self) -> list:
        """One capture unit per bucket."""
        return [
            lambda bucket=b: self.state.prefill(bucket.embeds, self.state.last_position)
            for b in self._buckets.values()
        ]

    def keep(self, graphs: list[torch.cuda.CUDAGraph]) -> None:
        for bucket, graph in zip(self._buckets.values(), graphs):
            bucket.graph = graph

    def captured(self) -> tuple[int, ...]:
        return tuple(size for size, b in self._buckets.items() if b.graph is not None)

    def replays(self) -> dict[int, int]:
        """Per bucket size: prefills run through its graph."""
        return {size: b.replays for size, b in self._buckets.items() if b.graph is not None}

    def bucket_for(self, prompt_len: int) -> int | None:
        """The bucket size a prompt of `prompt_len` positions is padded to (None: run unpadded)."""
        return next((size for size in self._buckets if size >= prompt_len), None)

    def run(self, embeds: torch.Tensor) -> None:
        """Prefill `embeds` (1, P, H): sets the state's past_hidden and first c0."""
        prompt_len = embeds.shape[1]
        size = self.bucket_for(prompt_len)
        if size is None:
            self._count_uncaptured(prompt_len)
            self.state.prefill(embeds)
            return
        bucket = self._buckets[size]
        bucket.embeds[:, :prompt_len].copy_(embeds)  # rows past P keep earlier (finite) prompts: masked
        self.state.last_position.fill_(prompt_len - 1)
        if bucket.graph is not None:
            bucket.replays += 1
            bucket.graph.replay()
        else:
            self._count_uncaptured(prompt_len)
            self.state.prefill(bucket.embeds, self.state.last_position)

    def _count_uncaptured(self, prompt_len: int) -> None:
        self.uncaptured += 1
        self.uncaptured_lengths.add(prompt_len)
