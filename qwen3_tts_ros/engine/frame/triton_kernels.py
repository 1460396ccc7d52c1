"""Triton kernels of the fused decode step (fused_triton.py): batch 1, one or two positions per call.

Why: after torch.compile a frame was still ~1,834 kernels (BENCHMARKS.md), each a few microseconds of
launch and tail inside the graph, so the kernel count, not the bytes read, set ms/frame. These kernels do a
decoder layer in five (four on the talker's split attention plus a combine), a head in one and a whole
token choice in one:
  gemv        RMSNorm prologue (optional) -> y = W x -> store / + residual / SwiGLU / + bias / float32 logits
  attention   q/k RMSNorm + RoPE of the new position, its K/V into the static cache, attention over <= pos
  combine     the talker's attention splits (flash-decoding) -> one row per head
  sample      qwen-tts's logits processing -> temperature / top-k / top-p -> greedy or Exp(1)-noise draw,
              the chosen id's embedding row for the next step, the sampler's counters
  frame_start, talker_input: the few copies a frame needs, in one kernel each

Numerics follow layers.py / sampling.py step by step: RMSNorm in float32, every intermediate the reference
materialises in the model dtype is rounded to it here too (so bf16 rounds where eager bf16 rounds), sums in
float32 (float64 for a float64 model). The order of those sums is the kernels' own, which is the only
difference from the reference path (test_fused_frame.py: the same greedy codes, and under teacher forcing the
same logits up to float32 roundings).

Imported only where Triton is (fused_triton.FusedTritonFrame.unavailable); on CPU the kernels run under
TRITON_INTERPRET=1 (the tests).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _gemv_kernel(
    x_ptr, x_stride, norm_ptr, w_ptr, out_ptr, out_stride, res_ptr, res_stride, bias_ptr, normed_ptr,
    eps, N: tl.constexpr, K: tl.constexpr,
    M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NORM: tl.constexpr,
    EPILOGUE: tl.constexpr, WRITE_NORMED: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """out[m, n] = epilogue(sum_k xn[m, k] W[n, k]) for the M rows of x; one program per BLOCK_N outputs.

    EPILOGUE 0: store; 1: + res (which may be out itself: each element is read before it is written by
    the same program); 2: SwiGLU, W holds [gate; up] (2N rows) and out = silu(gate) * up; 3: float32
    logits of the model-dtype product; 4: + bias. NORM: xn = rms_norm(x, norm) computed by each program
    (x is one or two rows: cheap next to the weights). WRITE_NORMED: program 0 also stores xn.
    """
    pid = tl.program_id(0)
    dtype = w_ptr.dtype.element_ty
    offs_m = tl.arange(0, M)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    if NORM:
        squares = tl.zeros([M, BLOCK_K], tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            xk = tl.load(
                x_ptr + offs_m[:, None] * x_stride + offs_k[None, :], mask=offs_k[None, :] < K, other=0.0
            )
            xk = xk.to(tl.float32)
            squares += xk * xk
        rstd = tl.rsqrt(tl.sum(squares, 1) / K + eps)
    acc = tl.zeros([M, BLOCK_N, BLOCK_K], ACC)
    if EPILOGUE == 2:
        acc_up = tl.zeros([M, BLOCK_N, BLOCK_K], ACC)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        xk = tl.load(x_ptr + offs_m[:, None] * x_stride + offs_k[None, :], mask=k_mask[None, :], other=0.0)
        if NORM:
            scale = tl.load(norm_ptr + offs_k, mask=k_mask, other=0.0).to(ACC)
            xk = (xk.to(tl.float32) * rstd[:, None]).to(dtype)
            xk = (xk.to(ACC) * scale[None, :]).to(dtype)
            if WRITE_NORMED:
                if pid == 0:
                    tl.store(
                        normed_ptr + offs_m[:, None] * x_stride + offs_k[None, :], xk, mask=k_mask[None, :]
                    )
        xk = xk.to(ACC)
        w_mask = n_mask[:, None] & k_mask[None, :]
        w = tl.load(w_ptr + offs_n[:, None] * K + offs_k[None, :], mask=w_mask, other=0.0)
        acc += w.to(ACC)[None, :, :] * xk[:, None, :]
        if EPILOGUE == 2:
            w_up = tl.load(w_ptr + (offs_n[:, None] + N) * K + offs_k[None, :], mask=w_mask, other=0.0)
            acc_up += w_up.to(ACC)[None, :, :] * xk[:, None, :]
    y = tl.sum(acc, 2).to(dtype)
    out_offs = offs_m[:, None] * out_stride + offs_n[None, :]
    mask = n_mask[None, :]
    if EPILOGUE == 1:
        res = tl.load(res_ptr + offs_m[:, None] * res_stride + offs_n[None, :], mask=mask, other=0.0)
        y = (res.to(ACC) + y.to(ACC)).to(dtype)
    if EPILOGUE == 2:
        gate = y.to(tl.float32)  # F.silu of the model-dtype gate, computed in float32 like torch
        silu = (gate / (1.0 + tl.exp(-gate))).to(dtype)
        y = (silu.to(ACC) * tl.sum(acc_up, 2).to(dtype).to(ACC)).to(dtype)
    if EPILOGUE == 4:
        y = (tl.sum(acc, 2) + tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(ACC)[None, :]).to(dtype)
    tl.store(out_ptr + out_offs, y, mask=mask)


@triton.jit
def _rms_norm_rope(x1, x2, weight_ptr, cos_ptr, sin_ptr, position, offs, eps,
                   D: tl.constexpr, dtype: tl.constexpr, ACC: tl.constexpr):  # fmt: skip
    """One head's (x1 | x2) halves -> rms_norm over the head, then RoPE at `position` (layers.apply_rope:
    x * cos + rotate_half(x) * sin, each product rounded to the model dtype)."""
    half: tl.constexpr = D // 2
    f1 = x1.to(tl.float32)
    f2 = x2.to(tl.float32)
    rstd = tl.rsqrt((tl.sum(f1 * f1, 0) + tl.sum(f2 * f2, 0)) / D + eps)
    w1 = tl.load(weight_ptr + offs).to(ACC)
    w2 = tl.load(weight_ptr + half + offs).to(ACC)
    n1 = ((f1 * rstd).to(dtype).to(ACC) * w1).to(dtype).to(ACC)
    n2 = ((f2 * rstd).to(dtype).to(ACC) * w2).to(dtype).to(ACC)
    row = position * D
    c1 = tl.load(cos_ptr + row + offs).to(ACC)
    c2 = tl.load(cos_ptr + row + half + offs).to(ACC)
    s1 = tl.load(sin_ptr + row + offs).to(ACC)
    s2 = tl.load(sin_ptr + row + half + offs).to(ACC)
    r1 = ((n1 * c1).to(dtype).to(ACC) - (n2 * s1).to(dtype).to(ACC)).to(dtype)
    r2 = ((n2 * c2).to(dtype).to(ACC) + (n1 * s2).to(dtype).to(ACC)).to(dtype)
    return r1, r2


@triton.jit
def _attention_kernel(
    qkv_ptr, qkv_stride, q_norm_ptr, k_norm_ptr, cos_ptr, sin_ptr, pos_ptr, k_cache, v_cache,
    out_ptr, out_stride, part_m, part_l, part_o, eps, scale, SPLIT_LEN: tl.constexpr, CACHE_LEN: tl.constexpr,
    S: tl.constexpr, KV_HEADS: tl.constexpr, NREP: tl.constexpr, D: tl.constexpr, BLOCK_L: tl.constexpr,
    SPLITS: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """Grid (query heads, SPLITS). For each of the S rows (position pos_ptr[m]): the new k (k_norm, RoPE)
    and v of the head's K/V group go into the cache at pos (by the split that holds pos), then the query
    head (q_norm, RoPE) attends to cache slots [split start, min(split end, pos + 1)).

    The NREP query heads of a group each store the same new k/v: identical bytes, so whichever store lands
    last, every program reads the value it stored itself (after its barrier).
    SPLITS == 1: out = softmax(q k^T * scale) v in the model dtype. SPLITS > 1 (talker: long caches read by
    many programs): each split stores its running max, sum and unnormalised output; combine merges them.
    A split that starts past pos reads nothing and stores (-inf, 0, 0).
    """
    head = tl.program_id(0)
    split = tl.program_id(1)
    g = head // NREP
    half: tl.constexpr = D // 2
    dtype: tl.constexpr = k_cache.dtype.element_ty
    offs = tl.arange(0, half)
    start = split * SPLIT_LEN
    q_size: tl.constexpr = KV_HEADS * NREP * D
    head_cache = g * CACHE_LEN * D
    for m in tl.static_range(S):
        position = tl.load(pos_ptr + m)
        row = qkv_ptr + m * qkv_stride
        k_ptr = row + q_size + g * D
        v_ptr = row + q_size + KV_HEADS * D + g * D
        k1, k2 = _rms_norm_rope(tl.load(k_ptr + offs), tl.load(k_ptr + half + offs), k_norm_ptr, cos_ptr,
                                sin_ptr, position, offs, eps, D, dtype, ACC)  # fmt: skip
        mine = (offs * 0 + position >= start) & (offs * 0 + position < start + SPLIT_LEN)
        slot = head_cache + position * D
        tl.store(k_cache + slot + offs, k1, mask=mine)
        tl.store(k_cache + slot + half + offs, k2, mask=mine)
        tl.store(v_cache + slot + offs, tl.load(v_ptr + offs), mask=mine)
        tl.store(v_cache + slot + half + offs, tl.load(v_ptr + half + offs), mask=mine)
    tl.debug_barrier()  # this program's cache writes are read below by other threads of the program
    for m in tl.static_range(S):
        position = tl.load(pos_ptr + m)
        end = tl.minimum(start + SPLIT_LEN, position + 1)
        row = qkv_ptr + m * qkv_stride
        q_ptr = row + head * D
        q1, q2 = _rms_norm_rope(tl.load(q_ptr + offs), tl.load(q_ptr + half + offs), q_norm_ptr, cos_ptr,
                                sin_ptr, position, offs, eps, D, dtype, ACC)  # fmt: skip
        q1 = q1.to(ACC)
        q2 = q2.to(ACC)
        best = tl.full([], float("-inf"), ACC)
        total = tl.zeros([], ACC)
        acc1 = tl.zeros([half], ACC)
        acc2 = tl.zeros([half], ACC)
        for l0 in range(0, SPLIT_LEN, BLOCK_L):  # constant bounds; blocks past `end` are masked out
            offs_l = start + l0 + tl.arange(0, BLOCK_L)
            l_mask = offs_l < end
            kv = head_cache + offs_l[:, None] * D + offs[None, :]
            ka = tl.load(k_cache + kv, mask=l_mask[:, None], other=0.0).to(ACC)
            kb = tl.load(k_cache + kv + half, mask=l_mask[:, None], other=0.0).to(ACC)
            scores = (tl.sum(ka * q1[None, :], 1) + tl.sum(kb * q2[None, :], 1)) * scale
            scores = tl.where(l_mask, scores, float("-inf"))
            new_best = tl.maximum(best, tl.max(scores, 0))
            alpha = tl.where(new_best == float("-inf"), 1.0, tl.exp(best - new_best))
            p = tl.where(l_mask, tl.exp(scores - new_best), 0.0)
            total = total * alpha + tl.sum(p, 0)
            va = tl.load(v_cache + kv, mask=l_mask[:, None], other=0.0).to(ACC)
            vb = tl.load(v_cache + kv + half, mask=l_mask[:, None], other=0.0).to(ACC)
            acc1 = acc1 * alpha + tl.sum(p[:, None] * va, 0)
            acc2 = acc2 * alpha + tl.sum(p[:, None] * vb, 0)
            best = new_best
        if SPLITS == 1:
            out = out_ptr + m * out_stride + head * D
            tl.store(out + offs, (acc1 / total).to(dtype))
            tl.store(out + half + offs, (acc2 / total).to(dtype))
        else:
            part = head * SPLITS + split
            tl.store(part_m + part, best)
            tl.store(part_l + part, total)
            tl.store(part_o + part * D + offs, acc1)
            tl.store(part_o + part * D + half + offs, acc2)


@triton.jit
def _combine_kernel(part_m, part_l, part_o, out_ptr, SPLITS: tl.constexpr, D: tl.constexpr):
    """One program per query head: merge the SPLITS partial softmaxes of _attention_kernel (one row)."""
    head = tl.program_id(0)
    dtype: tl.constexpr = out_ptr.dtype.element_ty
    splits = tl.arange(0, SPLITS)
    best = tl.load(part_m + head * SPLITS + splits)
    weight = tl.exp(best - tl.max(best, 0))  # split 0 always holds position 0: the max is finite
    total = tl.sum(tl.load(part_l + head * SPLITS + splits) * weight, 0)
    offs = tl.arange(0, D)
    parts = tl.load(part_o + (head * SPLITS + splits)[:, None] * D + offs[None, :])
    tl.store(out_ptr + head * D + offs, (tl.sum(parts * weight[:, None], 0) / total).to(dtype))


@triton.jit
def _divide(x, value_ptr, reciprocal_ptr, RECIPROCAL: tl.constexpr):
    """sampling.divide: a multiplication by the float32 reciprocal on CUDA, a division on CPU."""
    if RECIPROCAL:
        return x * tl.load(reciprocal_ptr)
    else:
        return x / tl.load(value_ptr)


@triton.jit
def _sample_kernel(
    logits_ptr, noise_ptr, code_ptr, V,
    do_sample_ptr, temperature_ptr, temperature_reciprocal_ptr, top_k_ptr, one_minus_top_p_ptr,
    seen_ptr, eos_mask_ptr, suppress_mask_ptr, penalty_factor_ptr, penalty_ptr, penalty_reciprocal_ptr,
    generated_ptr, min_new_tokens_ptr, step_ptr,
    embedding_ptr, next_input_ptr, frame_sum_ptr, H,
    BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr, PROCESS: tl.constexpr, EMBED: tl.constexpr,
    RECIPROCAL: tl.constexpr,
):  # fmt: skip
    """One program: float32 logits (V) -> one token id into code_ptr (sampling.py's choose_token).

    PROCESS (talker): process_scores first (repetition penalty over `seen`, EOS masked until
    min_new_tokens, control ids suppressed), then seen[token] = 1, generated += 1 and step += 1 (the frame
    counter). EMBED (code predictor): the token's row of `embedding` is the next step's input and is added
    to the frame's running embedding sum.

    Top-p removes the lowest-probability tokens whose cumulative probability stays <= 1 - top_p, keeping
    at least the most likely one, as transformers does; as a score threshold it keeps every token tied
    with the smallest kept one (the reference's sort order decides among exact ties: a measure-zero case).
    """
    offs = tl.arange(0, BLOCK_V)
    valid = offs < V
    scores = tl.load(logits_ptr + offs, mask=valid, other=float("-inf"))
    if PROCESS:
        seen = tl.load(seen_ptr + offs, mask=valid, other=0) != 0
        divided = _divide(scores, penalty_ptr, penalty_reciprocal_ptr, RECIPROCAL)
        penalized = tl.where(scores < 0, scores * tl.load(penalty_factor_ptr), divided)
        scores = tl.where(seen, penalized, scores)
        generated = tl.load(generated_ptr)
        eos = tl.load(eos_mask_ptr + offs, mask=valid, other=0) != 0
        scores = tl.where(eos & (generated < tl.load(min_new_tokens_ptr)), float("-inf"), scores)
        scores = tl.where(tl.load(suppress_mask_ptr + offs, mask=valid, other=0) != 0, float("-inf"), scores)
        scores = tl.where(valid, scores, float("-inf"))
    greedy = tl.argmax(scores, 0)
    warped = _divide(scores, temperature_ptr, temperature_reciprocal_ptr, RECIPROCAL)
    top_k = tl.load(top_k_ptr)
    if top_k < V:  # a sort only where a filter is on (top_k >= V and top_p >= 1 keep every token)
        descending = tl.sort(warped, 0, descending=True)
        kth = tl.max(tl.where(offs == top_k - 1, descending, float("-inf")), 0)
        warped = tl.where(warped < kth, float("-inf"), warped)
    one_minus_top_p = tl.load(one_minus_top_p_ptr)
    if one_minus_top_p > 0:  # at 0 only zero-probability tokens would go, which no draw picks anyway
        ascending = tl.sort(warped, 0)
        exp_sorted = tl.exp(ascending - tl.max(ascending, 0))
        cumulative = tl.cumsum(exp_sorted / tl.sum(exp_sorted, 0), 0)
        remove = (cumulative <= one_minus_top_p) & (offs < BLOCK_V - 1)
        removed = tl.sum(remove.to(tl.int32), 0)
        smallest_kept = tl.max(tl.where(offs == removed, ascending, float("-inf")), 0)
        warped = tl.where(warped < smallest_kept, float("-inf"), warped)
    exp_warped = tl.exp(warped - tl.max(warped, 0))
    probs = exp_warped / tl.sum(exp_warped, 0)
    noise = tl.maximum(tl.load(noise_ptr + offs, mask=valid, other=1.0), 1.1754943508222875e-38)
    sampled = tl.argmax(tl.where(valid, probs / noise, -1.0), 0)
    token = tl.where(tl.load(do_sample_ptr) != 0, sampled, greedy).to(tl.int64)
    tl.store(code_ptr, token)
    if PROCESS:
        tl.store(seen_ptr + token, 1)
        tl.store(generated_ptr, generated + 1)
        tl.store(step_ptr, tl.load(step_ptr) + 1)
    if EMBED:
        offs_h = tl.arange(0, BLOCK_H)
        h_mask = offs_h < H
        embedding = tl.load(embedding_ptr + token * H + offs_h, mask=h_mask)
        tl.store(next_input_ptr + offs_h, embedding, mask=h_mask)
        frame_sum = tl.load(frame_sum_ptr + offs_h, mask=h_mask)
        tl.store(
            frame_sum_ptr + offs_h, frame_sum + embedding.to(frame_sum_ptr.dtype.element_ty), mask=h_mask
        )


@triton.jit
def _frame_start_kernel(code0_ptr, frame_ptr, past_hidden_ptr, embedding_ptr, inputs_ptr, frame_sum_ptr, H,
                        BLOCK_H: tl.constexpr):  # fmt: skip
    """Frame t's inputs: frames[t][0] = c0; code-predictor rows [talker hidden, E0(c0)]; sum = E0(c0)."""
    code0 = tl.load(code0_ptr)
    tl.store(frame_ptr, code0)
    offs = tl.arange(0, BLOCK_H)
    mask = offs < H
    embed0 = tl.load(embedding_ptr + code0 * H + offs, mask=mask)
    tl.store(inputs_ptr + offs, tl.load(past_hidden_ptr + offs, mask=mask), mask=mask)
    tl.store(inputs_ptr + H + offs, embed0, mask=mask)
    tl.store(frame_sum_ptr + offs, embed0.to(frame_sum_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _talker_input_kernel(frame_sum_ptr, text_track_ptr, step_ptr, text_len_ptr, prompt_len_ptr, max_position,
                         out_ptr, position_ptr, H, BLOCK_H: tl.constexpr):  # fmt: skip
    """The talker's input of frame t: the 16 codebook embeddings' sum (rounded once, like a sum over the
    model-dtype embeddings) + text row min(t, text_len); its position min(P + t, max_seq_len - 1)."""
    dtype: tl.constexpr = out_ptr.dtype.element_ty
    step = tl.load(step_ptr)
    row = tl.minimum(step, tl.load(text_len_ptr))
    offs = tl.arange(0, BLOCK_H)
    mask = offs < H
    embed = tl.load(frame_sum_ptr + offs, mask=mask).to(dtype)
    text = tl.load(text_track_ptr + row * H + offs, mask=mask)
    acc_type: tl.constexpr = frame_sum_ptr.dtype.element_ty
    tl.store(out_ptr + offs, (embed.to(acc_type) + text.to(acc_type)).to(dtype), mask=mask)
    tl.store(position_ptr, tl.minimum(tl.load(prompt_len_ptr) + step, max_position))
