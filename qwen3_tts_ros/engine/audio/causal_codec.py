"""Exact streaming decode of the 12 Hz speech tokenizer: the causal decoder with its state carried over.

qwen-tts decodes a whole code sequence with `Qwen3TTSTokenizerV2Decoder.chunked_decode` (300-frame segments,
each re-reading 25 frames of left context). Inside a segment the decoder is causal, so decoding it chunk by
chunk with carried state gives the same samples (to float rounding) as decoding it at once:
  - every causal convolution keeps its last (kernel - 1) * dilation input samples (zeros at the start,
    which is exactly qwen-tts's left padding);
  - every transposed convolution keeps the input samples whose outputs overlap the next chunk's
    (kernel / stride - 1 of them: one for the decoder blocks, none for the kernel = stride upsamplers);
  - every attention layer keeps the keys/values (RoPE applied, at their segment positions) of the last
    sliding_window - 1 frames; a mask over [those, the chunk] gives each query its window;
  - everything else (RVQ lookup, norms, SnakeBeta, MLPs, LayerScale) works per time step: no state.
The 300/25 segmentation is reproduced too: at every 300-frame boundary the state restarts from the last
25 frames, with positions counted from them, as chunked_decode does.

Conditioning on frames whose samples are not wanted (a voice-clone reference, a segment's 25 context
frames) runs the front (RVQ, pre_conv, transformer) over all of them - the attention state depends on
everything since the segment start - but the convolutional back end only over the last few: its state
reaches back `back_receptive_frames` frames (11 for the 12 Hz codec); beyond them nothing earlier matters.

The per-chunk step works on static buffers only (state, positions, RoPE tables as device tensors), so on
CUDA it is captured as one CUDA graph per size in `graph_frames`; a chunk of any length replays them
largest first (e.g. 7 = 4 + 2 + 1). On CPU the same step runs eagerly on the whole chunk.

On CUDA the decoder can own a side stream (`stream`): everything it does to its state (start, decode,
capture, replays) and the copy of the samples to the host then runs there, so it overlaps work queued on
other streams (the engine's frame generation), and `decode` waits for that stream only. Its graphs are
captured on that stream too: torch gives cuBLAS one workspace per stream, a captured GEMM keeps using the
workspace of the stream it was captured on, and graphs captured on torch's shared capture stream (as the
frame generator's are) would write the same workspace while they replay concurrently.
"""

from __future__ import annotations

import contextlib
import math
import time
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from ..cuda_capture import no_cyclic_gc
from .codec_layers import Attention, CausalConv, CausalTransConv, ConvNeXt, ResidualUnit

# qwen-tts's Qwen3TTSTokenizerV2Model.decode calls chunked_decode with these defaults.
SEGMENT_FRAMES = 300
SEGMENT_CONTEXT_FRAMES = 25
GRAPH_FRAMES = (1, 2, 4, 8)


class CausalCodecDecoder:
    """Chunk-by-chunk decoder of one code sequence at a time, equal to qwen-tts's `speech_tokenizer.decode`.

    `start(prefix)` begins a sequence (prefix codes condition it and give no samples); `decode(frames)` then
    returns exactly len(frames) * 1920 float32 samples per call. One sequence at a time per instance;
    `owner` is free for the caller to note whose sequence the state holds (see codec.StreamingDecoder).
    """

    def __init__(
        self,
        decoder,
        *,
        use_cuda_graphs: bool = True,
        graph_frames=GRAPH_FRAMES,
        stream: torch.cuda.Stream | None = None,
    ):
        """decoder: qwen-tts `Qwen3TTSTokenizerV2Decoder` (`speech_tokenizer.model.decoder`); its device and
        dtype are used.

        stream: CUDA stream to run on (module doc); None: the caller's current stream. With a stream, the
        codes given to `start` / `decode` must be ready on it: the caller orders them (the frame generator
        clones its frames on it after their replay's event), and `decode` returns once the stream has
        done the chunk, without waiting for other streams.
        """
        weight = decoder.pre_conv.conv.weight
        self.device, self.dtype = weight.device, weight.dtype
        if stream is not None and self.device.type != "cuda":
            raise ValueError(f"a stream needs a CUDA decoder, this one is on {self.device}")
        self.stream = stream
        self.samples_per_frame = int(decoder.total_upsample)
        self.num_quantizers = decoder.config.num_quantizers
        self.quantizer = decoder.quantizer
        transformer = decoder.pre_transformer
        self.transformer = transformer
        self.window = int(transformer.config.sliding_window)
        self.use_cuda_graphs = use_cuda_graphs and self.device.type == "cuda"
        self.graph_frames = tuple(sorted(set(graph_frames) | {1}, reverse=True))  # 1: any length decomposes
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.graphs_captured = 0  # CUDA graphs captured so far (capture_report)
        self.owner: object | None = None
        self._frames_done = 0  # frames of the sequence processed so far (prefix included)
        self._segment_end = SEGMENT_FRAMES
        self._recent = torch.zeros(0, self.num_quantizers, dtype=torch.long, device=self.device)
        dev = dict(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            self.pre_conv = CausalConv(decoder.pre_conv, **dev)
            self.attention = [Attention(layer.self_attn, self.window, **dev) for layer in transformer.layers]
            self.upsample = [
                (CausalTransConv(trans, **dev), ConvNeXt(convnext, **dev))
                for trans, convnext in decoder.upsample
            ]
            blocks = list(decoder.decoder)
            self.first_conv = CausalConv(blocks[0], **dev)
            self.blocks = [
                (
                    b.block[0],
                    CausalTransConv(b.block[1], **dev),
                    [ResidualUnit(u, **dev) for u in b.block[2:]],
                )
                for b in blocks[1:-2]
            ]
            self.final_act, self.final_conv = blocks[-2], CausalConv(blocks[-1], **dev)
            # RoPE for every position a segment can reach, computed by qwen-tts's rotary module itself.
            positions = torch.arange(SEGMENT_CONTEXT_FRAMES + SEGMENT_FRAMES, device=self.device)
            self.cos, self.sin = transformer.rotary_emb(torch.zeros(1, **dev), positions[None])
            self.position = torch.zeros(1, dtype=torch.long, device=self.device)  # of the next frame
            # positions of the kept keys/values relative to `position` (negative ones do not exist yet)
            self._cached_offsets = torch.arange(-(self.window - 1), 0, device=self.device)
            self.back_receptive_frames = self._back_receptive_frames()
        if stream is not None:  # the buffers above were filled on the current stream
            stream.wait_stream(torch.cuda.current_stream(self.device))

    # -- state --------------------------------------------------------------------------------------------
    def _stateful(self):
        yield self.pre_conv
        yield from self.attention
        for trans, convnext in self.upsample:
            yield trans
            yield convnext.dwconv
        yield self.first_conv
        for _, trans, units in self.blocks:
            yield trans
            for unit in units:
                yield unit.conv1
                yield unit.conv2
        yield self.final_conv

    def _state_tensors(self):
        yield self.position
        for layer in self._stateful():
            if isinstance(layer, Attention):
                yield layer.keys
                yield layer.values
            else:
                yield layer.history

    def _reset_state(self) -> None:
        for tensor in self._state_tensors():
            tensor.zero_()

    def _back_receptive_frames(self) -> int:
        """Frames of back-end input (transformer output) that the back end's carried state depends on."""
        reach, rate = Fraction(0), Fraction(1)  # rate: samples per frame at the current layer's input

        def add(layer):
            nonlocal reach
            reach += Fraction(layer.history_len) / rate

        for trans, convnext in self.upsample:
            add(trans)
            rate *= trans.stride
            add(convnext.dwconv)
        add(self.first_conv)
        for _, trans, units in self.blocks:
            add(trans)
            rate *= trans.stride
            for unit in units:
                add(unit.conv1)
                add(unit.conv2)
        add(self.final_conv)
        return math.ceil(reach) + 1

    # -- the step -----------------------------------------------------------------------------------------
    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        """SplitResidualVectorQuantizer.decode; codebook rows divided per lookup (the table's values)."""
        q = self.quantizer
        parts = []
        for rvq, group in (
            (q.rvq_first, codes[:, : q.n_q_semantic]),
            (q.rvq_rest, codes[:, q.n_q_semantic :]),
        ):
            summed = None
            for layer, layer_codes in zip(rvq.vq.layers, group.transpose(0, 1)):
                book = layer._codebook
                usage = book.cluster_usage.clamp(min=book.epsilon)
                embedded = F.embedding(layer_codes, book.embedding_sum) / usage[layer_codes][..., None]
                embedded = layer.project_out(embedded).transpose(1, 2)
                summed = embedded if summed is None else summed + embedded
            parts.append(rvq.output_proj(summed))
        return parts[0] + parts[1]

    def _front(self, codes: torch.Tensor) -> torch.Tensor:
        """(1, 16, n) codes -> (1, latent, n) transformer output; advances `position` by n."""
        n = codes.shape[-1]
        h = self.pre_conv(self._embed(codes)).transpose(1, 2)
        t = self.transformer
        h = t.input_proj(h)
        steps = torch.arange(n, device=self.device)
        query_pos = self.position + steps
        key_pos = torch.cat([self.position + self._cached_offsets, query_pos])
        mask = (key_pos >= 0) & (key_pos <= query_pos[:, None]) & (key_pos > query_pos[:, None] - self.window)
        cos, sin = self.cos[:, query_pos], self.sin[:, query_pos]
        for layer, attention in zip(t.layers, self.attention):
            h = h + layer.self_attn_layer_scale(attention(layer.input_layernorm(h), cos, sin, mask))
            h = h + layer.mlp_layer_scale(layer.mlp(layer.post_attention_layernorm(h)))
        h = t.output_proj(t.norm(h))
        self.position.add_(n)
        return h.permute(0, 2, 1)

    def _back(self, h: torch.Tensor) -> torch.Tensor:
        """(1, latent, n) -> (n * 1920,) samples in [-1, 1]."""
        for trans, convnext in self.upsample:
            h = convnext(trans(h))
        wav = self.first_conv(h)
        for act, trans, units in self.blocks:
            wav = trans(act(wav))
            for unit in units:
                wav = unit(wav)
        wav = self.final_conv(self.final_act(wav))
        return wav.clamp(min=-1, max=1).reshape(-1)

    def _step(self, codes: torch.Tensor) -> torch.Tensor:
        return self._back(self._front(codes))

    def _condition(self, codes: torch.Tensor) -> None:
        """Feed (n, 16) codes of a freshly reset state without producing samples (see module doc)."""
        if len(codes):
            h = self._front(codes.transpose(0, 1)[None])
            self._back(h[..., -self.back_receptive_frames :])

    def _on_stream(self):
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    # -- CUDA graphs ----------------------------------------------------------------------------------------
    def capture(self) -> float:
        """Capture a CUDA graph per size in graph_frames on the calling thread; seconds spent (CPU: no-op)."""
        if not self.use_cuda_graphs or self._graphs:
            return 0.0
        start = time.perf_counter()
        with torch.no_grad(), self._on_stream():
            saved = [tensor.clone() for tensor in self._state_tensors()]  # the warm-up runs on the state
            inputs = {
                n: torch.zeros(1, self.num_quantizers, n, dtype=torch.long, device=self.device)
                for n in self.graph_frames
            }
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: lazy inits and allocator state outside capture
                for n in self.graph_frames:
                    for _ in range(2):
                        self._step(inputs[n])
                    self._reset_state()
            torch.cuda.current_stream(self.device).wait_stream(side)
            pool = None
            with no_cyclic_gc():
                for n in self.graph_frames:  # largest first: the smaller graphs reuse its pool blocks
                    graph = torch.cuda.CUDAGraph()
                    capture = torch.cuda.graph(
                        graph, pool=pool, stream=self.stream, capture_error_mode="thread_local"
                    )
                    with capture:
                        output = self._step(inputs[n])
                    pool = graph.pool()
                    self._graphs[n] = (graph, inputs[n], output)
            for tensor, value in zip(self._state_tensors(), saved):
                tensor.copy_(value)
            torch.cuda.synchronize(self.device)
        self.graphs_captured += len(self._graphs)
        return time.perf_counter() - start

    def graph_frames_captured(self) -> tuple[int, ...]:
        """Chunk sizes (frames) with a captured graph."""
        return tuple(sorted(self._graphs))

    def _run(self, codes: torch.Tensor) -> torch.Tensor:
        """(n, 16) codes inside one segment -> (n * 1920,) samples on the device."""
        if not self.use_cuda_graphs:
            return self._step(codes.transpose(0, 1)[None])
        self.capture()  # keeps the state: capturing lazily mid-sequence is fine
        pieces, begin = [], 0
        for size in self.graph_frames:
            while len(codes) - begin >= size:
                graph, static_codes, output = self._graphs[size]
                static_codes.copy_(codes[begin : begin + size].transpose(0, 1)[None])
                graph.replay()
                pieces.append(output.clone())
                begin += size
        return torch.cat(pieces)

    # -- sequences ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, prefix: torch.Tensor | None = None) -> None:
        """Begin a new code sequence; (P, 16) `prefix` codes come first in it but give no samples."""
        with self._on_stream():
            self._start(prefix)

    def _start(self, prefix: torch.Tensor | None) -> None:
        prefix = self._as_codes(prefix)
        done = len(prefix)
        segment = max(done - 1, 0) // SEGMENT_FRAMES  # the segment holding the prefix's last frame
        self._reset_state()
        self._condition(prefix[max(segment * SEGMENT_FRAMES - SEGMENT_CONTEXT_FRAMES, 0) :])
        self._frames_done = done
        self._segment_end = (segment + 1) * SEGMENT_FRAMES
        self._recent = prefix[-SEGMENT_CONTEXT_FRAMES:]

    @torch.no_grad()
    def decode(self, frames: torch.Tensor) -> np.ndarray:
        """(n, 16) next codes of the sequence -> float32 waveform of exactly n * 1920 samples."""
        with self._on_stream():
            return self._decode(frames)

    def _decode(self, frames: torch.Tensor) -> np.ndarray:
        frames = self._as_codes(frames)
        pieces, begin = [], 0
        while begin < len(frames):
            if self._frames_done == self._segment_end:  # chunked_decode's next segment: restart on context
                self._reset_state()
                self._condition(self._recent)
                self._segment_end += SEGMENT_FRAMES
            end = min(len(frames), begin + self._segment_end - self._frames_done)
            pieces.append(self._run(frames[begin:end]))
            self._recent = torch.cat([self._recent, frames[begin:end]])[-SEGMENT_CONTEXT_FRAMES:]
            self._frames_done += end - begin
            begin = end
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        # A blocking device -> host copy synchronises the current stream only, not the device.
        return torch.cat(pieces).to(torch.float32).cpu().numpy()

    def _as_codes(self, codes: torch.Tensor | None) -> torch.Tensor:
        if codes is None:
            return self._recent[:0]
        if codes.ndim != 2 or codes.shape[1] != self.num_quantizers:
            raise ValueError(f"expected (frames, {self.num_quantizers}) codes, got {tuple(codes.shape)}")
        return codes.to(self.device, torch.long).clamp(min=0)  # qwen-tts clamps (pad -1) the same way
