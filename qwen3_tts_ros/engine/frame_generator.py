"""Frame-by-frame codec-code generation: our own static-cache decode loop on qwen-tts's weights.

Per 12.5 Hz frame t (as qwen-tts's talker.generate does it):
  code predictor: [talker hidden, E0(c0)] -> codes 1..15            (capture unit 1, 15 steps unrolled)
  frame = [c0, c1..c15]; next talker input = sum of the 16 codebook embeddings
          + trailing_text_hidden[t] (or tts_pad_embed once the text is used up)
  talker: one position -> hidden, logits -> processed/sampled next c0 (capture unit 2)
Generation ends when c0 is EOS (that frame is not produced), after max_new_tokens - 1 frames (qwen-tts
semantics: the last sampled c0 never gets its residual codebooks), at max_seq_len, or on cancel.

On CUDA both units are captured once as CUDA graphs over static buffers; every per-call setting is a
device tensor, so the graphs serve all requests. On CPU the very same functions run eagerly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import torch

from .code_predictor import CodePredictor
from .compile import compile_available, layer_functions
from .prefill import Prefill
from .sampling import CodeSampler, TalkerSampler
from .talker import Talker
from .types import SamplingParams, StreamStats


class FrameGenerator:
    def __init__(
        self, model, *, max_seq_len: int = 2048, use_cuda_graphs: bool = True, compile: bool | None = None
    ):
        """model: qwen-tts `Qwen3TTSForConditionalGeneration` (device and dtype are taken from it).

        compile: torch.compile the per-layer functions of the decode steps (compile.py); None = on where
        available (CUDA with Triton). Fuses q/k/v and gate/up weights in place either way (layers.py).
        """
        talker = model.talker
        weight = talker.codec_head.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.max_seq_len = max_seq_len
        tc = talker.config
        self.eos_token_id = tc.codec_eos_token_id
        self.num_code_groups = tc.num_code_groups
        self.use_cuda_graphs = use_cuda_graphs and self.device.type == "cuda"
        self._busy = threading.Lock()
        self._graphs: tuple[torch.cuda.CUDAGraph, torch.cuda.CUDAGraph] | None = None

        self.compiled = compile_available(self.device) if compile is None else bool(compile)
        fns = layer_functions(self.compiled)
        with torch.no_grad():
            self.talker = Talker(talker, max_seq_len, self.device, self.dtype, fns)
            self.code_predictor = CodePredictor(talker.code_predictor, self.device, self.dtype, fns)
            self.talker_sampler = TalkerSampler(tc.vocab_size, tc.codec_eos_token_id, self.device)
            self.code_sampler = CodeSampler(talker.code_predictor.config.vocab_size, self.device)
            # Static buffers the two capture units read and write.
            hidden = dict(device=self.device, dtype=self.dtype)
            self.past_hidden = torch.zeros(1, 1, tc.hidden_size, **hidden)  # talker output of the last step
            self.code0 = torch.zeros(1, device=self.device, dtype=torch.long)  # sampled codebook-0 id
            self.frame = torch.zeros(self.num_code_groups, device=self.device, dtype=torch.long)
            self.frame_embed = torch.zeros(1, 1, tc.hidden_size, **hidden)  # sum of the frame's embeddings
            self.text_embed = torch.zeros(1, 1, tc.hidden_size, **hidden)  # text track of the next step
            self.position = torch.zeros(1, device=self.device, dtype=torch.long)  # talker position of it

    # -- the two capture units ------------------------------------------------------------------------
    def _predict_frame(self) -> None:
        embed0 = self.talker.codec_embedding(self.code0[:, None])
        codes = self.code_predictor.predict(self.past_hidden, embed0, self.code_sampler)
        self.frame.copy_(torch.cat([self.code0, *codes]))
        self.frame_embed.copy_(self.code_predictor.frame_embedding(embed0, codes))

    def _talker_step(self) -> None:
        hidden, logits = self.talker.step(self.frame_embed + self.text_embed, self.position)
        self.past_hidden.copy_(hidden)
        self.code0.copy_(self.talker_sampler(logits))

    def capture(self) -> float:
        """Capture the CUDA graphs (once, on the calling thread); returns seconds spent. No-op on CPU."""
        if not self.use_cuda_graphs or self._graphs is not None:
            return 0.0
        start = time.perf_counter()
        with torch.no_grad():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: lazy inits and allocator state outside capture
                for _ in range(3):
                    self._predict_frame()
                    self._talker_step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            predict_graph, step_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
            with torch.cuda.graph(predict_graph, capture_error_mode="thread_local"):
                self._predict_frame()
            with torch.cuda.graph(step_graph, pool=predict_graph.pool(), capture_error_mode="thread_local"):
                self._talker_step()
            torch.cuda.synchronize(self.device)
        self._graphs = (predict_graph, step_graph)
        return time.perf_counter() - start

    def _run_predict_frame(self) -> None:
        if self._graphs is not None:
            self._graphs[0].replay()
        else:
            self._predict_frame()

    def _run_talker_step(self) -> None:
        if self._graphs is not None:
            self._graphs[1].replay()
        else:
            self._talker_step()

    # -- generation -----------------------------------------------------------------------------------
    def generate(
        self,
        prefill: Prefill,
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        stats: StreamStats | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield each frame's 16 codes as a (16,) int64 tensor on the model's device, in order.

        Not re-entrant: one generation at a time per FrameGenerator (RuntimeError otherwise).
        """
        prompt_len = prefill.inputs_embeds.shape[1]
        if prompt_len > self.max_seq_len:
            raise ValueError(f"prompt of {prompt_len} positions does not fit max_seq_len={self.max_seq_len}")
        if self.use_cuda_graphs:
            self.capture()
        return self._frames(prefill, sampling, cancel, stats if stats is not None else StreamStats())

    def _frames(self, prefill, sampling, cancel, stats) -> Iterator[torch.Tensor]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("FrameGenerator is already generating (one stream at a time)")
        try:
            with torch.no_grad():
                yield from self._decode(prefill, sampling, cancel, stats)
        finally:
            self._busy.release()

    def _decode(self, prefill, sampling, cancel, stats) -> Iterator[torch.Tensor]:
        start = time.perf_counter()
        to_model = dict(device=self.device, dtype=self.dtype)
        embeds = prefill.inputs_embeds.to(**to_model)
        trailing = prefill.trailing_text_hidden.to(**to_model)
        pad = prefill.tts_pad_embed.to(**to_model)
        prompt_len = embeds.shape[1]
        self.talker_sampler.set(sampling)
        self.code_sampler.set(sampling)
        self.talker_sampler.reset()

        hidden, logits = self.talker.prefill(embeds)
        self.past_hidden.copy_(hidden)
        self.code0.copy_(self.talker_sampler(logits))
        code0 = int(self.code0.item())
        stats.prefill_ms = (time.perf_counter() - start) * 1000
        stats.frames = 0
        stats.frame_ms = []

        max_frames = sampling.max_new_tokens - 1
        while True:
            if code0 == self.eos_token_id:
                stats.stopped_by = "eos"
                return
            if stats.frames >= max_frames:
                stats.stopped_by = "max_new_tokens"
                return
            if cancel is not None and cancel.is_set():
                stats.stopped_by = "cancelled"
                return
            frame_start = time.perf_counter()
            self._run_predict_frame()
            frame = self.frame.clone()
            t = stats.frames  # index of this frame; the next talker step feeds text position t
            position = prompt_len + t
            more = t + 1 < max_frames and position < self.max_seq_len
            if more:
                self.text_embed.copy_(trailing[:, t : t + 1] if t < trailing.shape[1] else pad)
                self.position.fill_(position)
                self._run_talker_step()
                code0 = int(self.code0.item())  # syncs: the frame and the next c0 are ready
            elif self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            stats.frames += 1
            stats.frame_ms.append((time.perf_counter() - frame_start) * 1000)
            yield frame
            if not more:
                stats.stopped_by = "max_new_tokens" if t + 1 >= max_frames else "max_seq_len"
                return
