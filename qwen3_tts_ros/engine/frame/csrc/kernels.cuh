// CUDA C++ kernels of the fused decode frame: the Triton kernels of engine/decode/kernels.py one to one (same
// fusion boundaries, arguments and epilogues), for batch size 1 on sm_80/86/87/90. Plain CUDA, no torch.
//
// Numerics as kernels.py (and so as layers.py / sampling.py): RMSNorm in float32, every intermediate that the
// reference materialises in the model dtype is rounded to it here too, sums in float32 (float64 for a float64
// model). Only the order of the sums is the kernels' own.
//
// Memory: the weights are read once per frame with 16-byte loads (VEC elements per lane), coalesced along K;
// inputs (one or two rows) are staged in shared memory; reductions are warp shuffles, then shared memory.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <stdint.h>

namespace q3tts {

// -- element types -------------------------------------------------------------------------------------------
// Num<T>: acc (the accumulation type), wide (T -> acc), f32 (T -> float), round (acc -> T, nearest even),
// from_f32 (float -> T).
template <typename T> struct Num;
template <> struct Num<__nv_bfloat16> {
  using acc = float;
  static __device__ __forceinline__ float wide(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ float f32(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 round(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_f32(float x) { return __float2bfloat16_rn(x); }
};
template <> struct Num<__half> {
  using acc = float;
  static __device__ __forceinline__ float wide(__half x) { return __half2float(x); }
  static __device__ __forceinline__ float f32(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half round(float x) { return __float2half_rn(x); }
  static __device__ __forceinline__ __half from_f32(float x) { return __float2half_rn(x); }
};
template <> struct Num<float> {
  using acc = float;
  static __device__ __forceinline__ float wide(float x) { return x; }
  static __device__ __forceinline__ float f32(float x) { return x; }
  static __device__ __forceinline__ float round(float x) { return x; }
  static __device__ __forceinline__ float from_f32(float x) { return x; }
};
template <> struct Num<double> {
  using acc = double;
  static __device__ __forceinline__ double wide(double x) { return x; }
  static __device__ __forceinline__ float f32(double x) { return static_cast<float>(x); }
  static __device__ __forceinline__ double round(double x) { return x; }
  static __device__ __forceinline__ double from_f32(float x) { return static_cast<double>(x); }
};

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }

template <typename T, int VEC> struct alignas(sizeof(T) * VEC) Vec { T v[VEC]; };

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; `scratch` holds 32 values; every thread gets the result. Contains two barriers.
template <typename A> __device__ __forceinline__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A total = 0;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// Argmax over the block: the largest value, the smallest index among equal ones (torch.argmax / tl.argmax on
// the values seen here). Every thread gets the index. Contains two barriers.
__device__ __forceinline__ void argmax_pair(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
}
__device__ __forceinline__ int block_argmax(float v, int i, float* scratch_v, int* scratch_i) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    argmax_pair(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  __syncthreads();
  if (lane == 0) { scratch_v[warp] = v; scratch_i[warp] = i; }
  __syncthreads();
  float best = scratch_v[0];
  int index = scratch_i[0];
  for (int w = 1; w < warps; ++w) argmax_pair(best, index, scratch_v[w], scratch_i[w]);
  return index;
}

// -- gemv ------------------------------------------------------------------------------------------------------
// out[m, n] = epilogue(sum_k xn[m, k] W[n, k]) for the M (1 or 2) rows of x (Triton: _gemv_kernel).
// Grid: ceil(N / GEMV_WARPS) blocks of GEMV_WARPS warps; one warp per output n (and its up row n + N for
// SwiGLU), each lane reading VEC contiguous weights (16 bytes) per step, K / (32 VEC) steps.
// Shared memory (dynamic): M * K model-dtype elements, the (normalised) input rows, which every warp reads.
// Prologue: norm != nullptr -> xn = rms_norm(x) (float32 statistics, rounded like Qwen3TTSRMSNorm); block 0
// also stores xn to `normed` when given. Epilogues: kStore; kResidual (residual may be out itself: each element
// is read before it is written, by the same thread); kSwiGLU (W = [gate; up], out = silu(gate) * up, silu in
// float32 like F.silu); kLogits (float32 out of the model-dtype product); kBias.
constexpr int GEMV_WARPS = 4;

template <typename T, int M, bool SWIGLU, int VEC>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const T* __restrict__ x, int64_t x_stride, const T* __restrict__ norm, const T* __restrict__ w,
            void* out, int64_t out_stride, const T* residual, int64_t residual_stride, const T* __restrict__ bias,
            T* normed, float eps, int N, int K, int epilogue) {
  using A = typename Num<T>::acc;
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  T* xs = reinterpret_cast<T*>(gemv_smem);
  __shared__ float scratch[32];
  for (int k = threadIdx.x; k < K; k += blockDim.x) {  // x read once (from L2: every block reads it)
#pragma unroll
    for (int m = 0; m < M; ++m) xs[m * K + k] = x[m * x_stride + k];
  }
  if (norm != nullptr) {  // each thread rewrites only the elements it loaded: no barrier before the squares
    float rstd[M];
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float squares = 0.f;
      for (int k = threadIdx.x; k < K; k += blockDim.x) {
        const float f = Num<T>::f32(xs[m * K + k]);
        squares += f * f;
      }
      rstd[m] = rsqrtf(block_sum(squares, scratch) / K + eps);
    }
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        T v = Num<T>::from_f32(Num<T>::f32(xs[m * K + k]) * rstd[m]);
        v = Num<T>::round(Num<T>::wide(v) * Num<T>::wide(norm[k]));
        if (normed != nullptr && blockIdx.x == 0) normed[m * x_stride + k] = v;
        xs[m * K + k] = v;
      }
    }
  }
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
  if (n >= N) return;
  A acc[M], acc_up[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = acc_up[m] = A(0);
  const T* row = w + static_cast<int64_t>(n) * K;
  const T* row_up = w + static_cast<int64_t>(n + N) * K;
#pragma unroll 4
  for (int k0 = lane * VEC; k0 < K; k0 += 32 * VEC) {
    const Vec<T, VEC> wv = *reinterpret_cast<const Vec<T, VEC>*>(row + k0);
    Vec<T, VEC> uv;
    if (SWIGLU) uv = *reinterpret_cast<const Vec<T, VEC>*>(row_up + k0);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const Vec<T, VEC> xv = *reinterpret_cast<const Vec<T, VEC>*>(xs + m * K + k0);
#pragma unroll
      for (int i = 0; i < VEC; ++i) {
        acc[m] += Num<T>::wide(wv.v[i]) * Num<T>::wide(xv.v[i]);
        if (SWIGLU) acc_up[m] += Num<T>::wide(uv.v[i]) * Num<T>::wide(xv.v[i]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    acc[m] = warp_sum(acc[m]);
    if (SWIGLU) acc_up[m] = warp_sum(acc_up[m]);
  }
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const T y = Num<T>::round(acc[m]);
    const int64_t o = m * out_stride + n;
    T* out_t = static_cast<T*>(out);
    if (epilogue == 3) {
      static_cast<float*>(out)[o] = Num<T>::f32(y);
    } else if (SWIGLU) {
      const float gate = Num<T>::f32(y);
      const T silu = Num<T>::from_f32(gate / (1.0f + expf(-gate)));
      out_t[o] = Num<T>::round(Num<T>::wide(silu) * Num<T>::wide(Num<T>::round(acc_up[m])));
    } else if (epilogue == 1) {
      out_t[o] = Num<T>::round(Num<T>::wide(residual[m * residual_stride + n]) + Num<T>::wide(y));
    } else if (epilogue == 4) {
      out_t[o] = Num<T>::round(acc[m] + Num<T>::wide(bias[n]));
    } else {
      out_t[o] = y;
    }
  }
}

// -- attention -------------------------------------------------------------------------------------------------
// One head's rms_norm (float32 statistics) then RoPE at table row `position` (layers.apply_rope: x * cos +
// rotate_half(x) * sin, each product rounded to the model dtype), block-wide; src: D elements of a qkv row.
// `work` (D elements) holds the normalised head; the result goes to dst (shared or global memory).
// Contains barriers: every thread of the block must call it.
template <typename T>
__device__ __forceinline__ void norm_rope(const T* src, const T* weight, const T* cos, const T* sin, int64_t position, float eps,
                          int D, T* work, T* dst, float* scratch) {
  using A = typename Num<T>::acc;
  float squares = 0.f;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    const float f = Num<T>::f32(src[d]);
    squares += f * f;
  }
  const float rstd = rsqrtf(block_sum(squares, scratch) / D + eps);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    const T n = Num<T>::from_f32(Num<T>::f32(src[d]) * rstd);
    work[d] = Num<T>::round(Num<T>::wide(n) * Num<T>::wide(weight[d]));
  }
  __syncthreads();
  const int half = D / 2;
  const int64_t row = position * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    const A n = Num<T>::wide(work[d]);
    const A partner = Num<T>::wide(work[d < half ? d + half : d - half]);
    const A c = Num<T>::wide(Num<T>::round(n * Num<T>::wide(cos[row + d])));
    const A s = Num<T>::wide(Num<T>::round(partner * Num<T>::wide(sin[row + d])));
    dst[d] = Num<T>::round(d < half ? c - s : c + s);
  }
  __syncthreads();
}

// Grid (query heads, splits) of ATTENTION_THREADS threads (Triton: _attention_kernel). For each of the S rows:
// the new k (k_norm, RoPE) and v of the head's K/V group go into the cache at the row's position (by the split
// that holds it), then the query head (q_norm, RoPE) attends to slots [split start, min(split end, pos + 1)).
// The NREP query heads of a group store the same bytes, so each reads what it stored itself (after a barrier,
// which also orders global memory within the block). Each warp takes tiles of 32 slots: a lane scores one slot
// (its K row read with 16-byte loads where aligned), the warp keeps a running max / sum (online softmax) and
// lanes own D / 32 output dims that accumulate the V rows (coalesced); warps merge in shared memory at the end.
// splits == 1: out = softmax(q k^T * scale) v in the model dtype; else running max, sum and unnormalised
// output go to part_m / part_l / part_o for combine_kernel ((-inf, 0, 0) for a split past the position).
// Shared memory (dynamic): D model-dtype elements twice (work, q) + warps * (D + 2) accumulators.
constexpr int ATTENTION_THREADS = 128;
constexpr int ATTENTION_MAX_D = 128;  // D / 32 accumulators per lane: 4 registers at most

template <typename T>
__global__ void __launch_bounds__(ATTENTION_THREADS)
attention_kernel(const T* qkv, int64_t qkv_stride, const T* q_norm, const T* k_norm, const T* cos, const T* sin,
                 const int64_t* positions, T* k_cache, T* v_cache, T* out, int64_t out_stride,
                 typename Num<T>::acc* part_m, typename Num<T>::acc* part_l, typename Num<T>::acc* part_o,
                 float eps, double scale_arg, int split_len, int cache_len, int S, int kv_heads, int nrep, int D,
                 int splits) {
  using A = typename Num<T>::acc;
  constexpr int WARPS = ATTENTION_THREADS / 32;
  constexpr int PER_LANE = ATTENTION_MAX_D / 32;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  A* warp_acc = reinterpret_cast<A*>(attention_smem);  // WARPS x D
  A* warp_m = warp_acc + WARPS * D;
  A* warp_l = warp_m + WARPS;
  T* work = reinterpret_cast<T*>(warp_l + WARPS);
  T* q = work + D;
  __shared__ float scratch[32];
  const A scale = static_cast<A>(scale_arg);
  const int head = blockIdx.x, split = blockIdx.y, g = head / nrep;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int start = split * split_len;
  const int q_size = kv_heads * nrep * D;
  const int64_t head_cache = static_cast<int64_t>(g) * cache_len * D;
  for (int m = 0; m < S; ++m) {
    const int64_t position = positions[m];
    const T* row = qkv + m * qkv_stride;
    const bool mine = position >= start && position < start + split_len;
    T* slot = k_cache + head_cache + position * D;
    // every thread calls norm_rope (barriers); only the owning split stores
    norm_rope(row + q_size + g * D, k_norm, cos, sin, position, eps, D, work, q, scratch);
    if (mine) {
      const T* v = row + q_size + kv_heads * D + g * D;
      for (int d = threadIdx.x; d < D; d += blockDim.x) {
        slot[d] = q[d];
        v_cache[head_cache + position * D + d] = v[d];
      }
    }
    __syncthreads();  // q is rewritten next
  }
  constexpr int KV = 16 / sizeof(T);  // elements per 16-byte load of a K row
  const bool vector_k = D % KV == 0;  // rows then start 16-byte aligned (torch allocations are)
  for (int m = 0; m < S; ++m) {
    const int64_t position = positions[m];
    const int end = static_cast<int>(min(static_cast<int64_t>(start + split_len), position + 1));
    norm_rope(qkv + m * qkv_stride + head * D, q_norm, cos, sin, position, eps, D, work, q, scratch);
    A best = -INFINITY, total = A(0), acc[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) acc[i] = A(0);
    for (int tile = start + warp * 32; tile < end; tile += WARPS * 32) {
      const int l = tile + lane;
      A score = -INFINITY;
      if (l < end) {
        const T* k = k_cache + head_cache + static_cast<int64_t>(l) * D;
        A dot = A(0);
        if (vector_k) {
#pragma unroll 4
          for (int d0 = 0; d0 < D; d0 += KV) {
            const Vec<T, KV> kv = *reinterpret_cast<const Vec<T, KV>*>(k + d0);
#pragma unroll
            for (int i = 0; i < KV; ++i) dot += Num<T>::wide(kv.v[i]) * Num<T>::wide(q[d0 + i]);
          }
        } else {
          for (int d = 0; d < D; ++d) dot += Num<T>::wide(k[d]) * Num<T>::wide(q[d]);
        }
        score = dot * scale;
      }
      const A new_best = fmax(best, warp_max(score));
      const A alpha = new_best == -INFINITY ? A(1) : exp_acc(best - new_best);
      const A p = l < end ? exp_acc(score - new_best) : A(0);
      total = total * alpha + warp_sum(p);
#pragma unroll
      for (int i = 0; i < PER_LANE; ++i) acc[i] *= alpha;
      const int count = min(32, end - tile);
      for (int j = 0; j < count; ++j) {
        const A pj = __shfl_sync(0xffffffffu, p, j);
        const T* v = v_cache + head_cache + static_cast<int64_t>(tile + j) * D;
#pragma unroll
        for (int i = 0; i < PER_LANE; ++i) {
          const int d = lane + 32 * i;
          if (d < D) acc[i] += pj * Num<T>::wide(v[d]);
        }
      }
      best = new_best;
    }
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
      const int d = lane + 32 * i;
      if (d < D) warp_acc[warp * D + d] = acc[i];
    }
    if (lane == 0) { warp_m[warp] = best; warp_l[warp] = total; }
    __syncthreads();
    A overall = -INFINITY;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) overall = fmax(overall, warp_m[w]);
    A sum = A(0);
#pragma unroll
    for (int w = 0; w < WARPS; ++w) sum += warp_l[w] * (overall == -INFINITY ? A(0) : exp_acc(warp_m[w] - overall));
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
      A o = A(0);
#pragma unroll
      for (int w = 0; w < WARPS; ++w) o += warp_acc[w * D + d] * (overall == -INFINITY ? A(0) : exp_acc(warp_m[w] - overall));
      if (splits == 1) {
        out[m * out_stride + head * D + d] = Num<T>::round(o / sum);
      } else {
        part_o[(static_cast<int64_t>(head) * splits + split) * D + d] = o;
      }
    }
    if (splits > 1 && threadIdx.x == 0) {
      part_m[head * splits + split] = overall;
      part_l[head * splits + split] = sum;
    }
    __syncthreads();  // warp_acc, q are rewritten by the next row
  }
}

// Grid (query heads) of COMBINE_THREADS threads (Triton: _combine_kernel): merge the splits' partial softmaxes
// of attention_kernel into one row per head. Each thread owns output dims; splits are read from L2.
constexpr int COMBINE_THREADS = 128;

template <typename T>
__global__ void __launch_bounds__(COMBINE_THREADS)
combine_kernel(const typename Num<T>::acc* part_m, const typename Num<T>::acc* part_l,
               const typename Num<T>::acc* part_o, T* out, int splits, int D) {
  using A = typename Num<T>::acc;
  const int head = blockIdx.x;
  const A* m = part_m + head * splits;
  const A* l = part_l + head * splits;
  A best = -INFINITY;
  for (int s = 0; s < splits; ++s) best = fmax(best, m[s]);  // split 0 holds position 0: finite
  A total = A(0);
  for (int s = 0; s < splits; ++s) total += l[s] * exp_acc(m[s] - best);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    A o = A(0);
    for (int s = 0; s < splits; ++s) o += part_o[(static_cast<int64_t>(head) * splits + s) * D + d] * exp_acc(m[s] - best);
    out[head * D + d] = Num<T>::round(o / total);
  }
}

// -- token choice ----------------------------------------------------------------------------------------------
// One block of SAMPLE_THREADS (Triton: _sample_kernel): float32 logits (V) -> one token id (sampling.py's
// choose_token). process (talker): process_scores first (repetition penalty over `seen`, EOS masked until
// min_new_tokens, control ids suppressed), then seen[token] = 1, generated += 1, step += 1. embed (code
// predictor): the token's embedding row is the next step's input and is added to the frame's embedding sum.
// Top-k: the k-th largest score by radix select (kth_largest), no sort. Top-p: one bitonic sort (ascending,
// block_v = next power of two >= V, -inf padding) of the top-k-filtered scores; no sort when it is off.
// Sampling: argmax(probs / max(noise, FLT_MIN)) with Exp(1) noise drawn by torch (capturable).
// Shared memory (dynamic): 3 * block_v floats (the warped scores, a sorted copy, its cumulative probabilities).
constexpr int SAMPLE_THREADS = 1024;

__device__ __forceinline__ void bitonic_sort_ascending(float* values, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const float a = values[i], b = values[partner];
          if ((a > b) == ((i & k) == 0)) { values[i] = b; values[partner] = a; }
        }
      }
      __syncthreads();
    }
  }
}

// Inclusive prefix sum of values[0, n) in place (n a power of two, each thread a contiguous chunk).
__device__ __forceinline__ void block_inclusive_scan(float* values, int n, float* scratch) {
  const int chunk = (n + blockDim.x - 1) / blockDim.x;
  const int begin = min(n, static_cast<int>(threadIdx.x) * chunk), end = min(n, begin + chunk);
  float local = 0.f;
  for (int i = begin; i < end; ++i) local += values[i];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float inclusive = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  float before = inclusive - local;
  for (int w = 0; w < warp; ++w) before += scratch[w];
  for (int i = begin; i < end; ++i) { before += values[i]; values[i] = before; }
  __syncthreads();
}

// Order-preserving unsigned key of a float (larger float, larger key) and back.
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float from_order_key(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// The k-th largest (k >= 1) of values[0, n): radix select on order_key, 8 bits a pass from the top (4 passes
// of a shared-memory histogram of the keys that match the digits chosen so far); no sort.
__device__ __forceinline__ float kth_largest(const float* values, int n, int k, unsigned* histogram, int* digit,
                                             int* rest) {
  uint32_t prefix = 0, mask = 0;
  if (threadIdx.x == 0) *rest = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const uint32_t key = order_key(values[i]);
      if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // lane l holds buckets 255 - 8l .. 248 - 8l (from the top)
      const int lane = threadIdx.x;
      unsigned counts[8], own = 0;
#pragma unroll
      for (int b = 0; b < 8; ++b) { counts[b] = histogram[255 - 8 * lane - b]; own += counts[b]; }
      unsigned above = own;  // inclusive prefix over lanes = keys in buckets >= this lane's lowest
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const unsigned up = __shfl_up_sync(0xffffffffu, above, o);
        if (lane >= o) above += up;
      }
      const unsigned before = above - own;
      const unsigned target = static_cast<unsigned>(*rest);
      if (before < target && target <= above) {  // exactly one lane
        unsigned seen = before;
#pragma unroll
        for (int b = 0; b < 8; ++b) {
          if (seen + counts[b] >= target) {
            *digit = 255 - 8 * lane - b;
            *rest = static_cast<int>(target - seen);
            break;
          }
          seen += counts[b];
        }
      }
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(*digit) << shift;
    mask |= 255u << shift;
    __syncthreads();  // *digit is rewritten by the next pass
  }
  return from_order_key(prefix);
}

template <typename T>
__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(const float* logits, const float* noise, int64_t* code, int V, const uint8_t* do_sample,
              const float* temperature_reciprocal, const int64_t* top_k_ptr, const float* one_minus_top_p_ptr,
              uint8_t* seen, const uint8_t* eos_mask, const uint8_t* suppress_mask, const float* penalty_factor,
              const float* penalty_reciprocal, int64_t* generated, const int64_t* min_new_tokens, int64_t* step,
              const T* embedding, T* next_input, typename Num<T>::acc* frame_sum, int H, int block_v,
              int process, int embed) {
  using A = typename Num<T>::acc;
  extern __shared__ __align__(16) float sample_smem[];
  float* warped = sample_smem;
  float* sorted = sample_smem + block_v;
  float* cumulative = sorted + block_v;
  __shared__ float scratch[32];
  __shared__ float scratch_v[32];
  __shared__ int scratch_i[32];
  __shared__ int chosen;
  __shared__ unsigned histogram[256];
  __shared__ int radix_digit, radix_rest;
  const bool mask_eos = process && *generated < *min_new_tokens;
  const float reciprocal = *temperature_reciprocal;
  float best = -INFINITY;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < block_v; i += blockDim.x) {
    float s = -INFINITY;
    if (i < V) {
      s = logits[i];
      if (process) {
        if (seen[i]) s = s < 0.f ? s * *penalty_factor : s * *penalty_reciprocal;
        if ((mask_eos && eos_mask[i]) || suppress_mask[i]) s = -INFINITY;
      }
    }
    argmax_pair(best, best_i, s, i);
    warped[i] = s * reciprocal;
  }
  const int greedy = block_argmax(best, best_i, scratch_v, scratch_i);
  const int64_t top_k = *top_k_ptr;
  const float one_minus_top_p = *one_minus_top_p_ptr;
  if (top_k < V) {  // every score below the k-th largest goes (ties with it stay)
    const float kth = kth_largest(warped, block_v, static_cast<int>(top_k), histogram, &radix_digit, &radix_rest);
    for (int i = threadIdx.x; i < block_v; i += blockDim.x)
      if (warped[i] < kth) warped[i] = -INFINITY;
    __syncthreads();
  }
  if (one_minus_top_p > 0.f) {
    for (int i = threadIdx.x; i < block_v; i += blockDim.x) sorted[i] = warped[i];
    __syncthreads();
    bitonic_sort_ascending(sorted, block_v);
    // transformers' TopP: drop the lowest tokens whose cumulative probability stays <= 1 - top_p, keeping
    // the most likely one; as a score threshold (ties with the smallest kept score stay).
    const float top = sorted[block_v - 1];
    float local = 0.f;
    for (int i = threadIdx.x; i < block_v; i += blockDim.x) local += expf(sorted[i] - top);
    const float total = block_sum(local, scratch);
    for (int i = threadIdx.x; i < block_v; i += blockDim.x) cumulative[i] = expf(sorted[i] - top) / total;
    __syncthreads();
    block_inclusive_scan(cumulative, block_v, scratch);
    float removed = 0.f;  // cumulative is non-decreasing: the removed tokens are a prefix
    for (int i = threadIdx.x; i < block_v - 1; i += blockDim.x) removed += cumulative[i] <= one_minus_top_p;
    const float smallest_kept = sorted[static_cast<int>(block_sum(removed, scratch))];
    for (int i = threadIdx.x; i < block_v; i += blockDim.x)
      if (warped[i] < smallest_kept) warped[i] = -INFINITY;
    __syncthreads();
  }
  float top = -INFINITY;
  for (int i = threadIdx.x; i < block_v; i += blockDim.x) top = fmaxf(top, warped[i]);
  top = warp_max(top);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = top;
  __syncthreads();
  top = -INFINITY;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) top = fmaxf(top, scratch[w]);
  float local = 0.f;
  for (int i = threadIdx.x; i < block_v; i += blockDim.x) local += expf(warped[i] - top);
  const float total = block_sum(local, scratch);
  best = -INFINITY;
  best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < block_v; i += blockDim.x) {
    const float q = i < V ? (expf(warped[i] - top) / total) / fmaxf(noise[i], FLT_MIN) : -1.f;
    argmax_pair(best, best_i, q, i);
  }
  const int sampled = block_argmax(best, best_i, scratch_v, scratch_i);
  if (threadIdx.x == 0) {
    const int token = *do_sample ? sampled : greedy;
    chosen = token;
    *code = token;
    if (process) {
      seen[token] = 1;
      *generated += 1;
      *step += 1;
    }
  }
  __syncthreads();
  if (embed) {
    const T* row = embedding + static_cast<int64_t>(chosen) * H;
    for (int h = threadIdx.x; h < H; h += blockDim.x) {
      const T e = row[h];
      next_input[h] = e;
      frame_sum[h] += Num<T>::wide(e);
    }
  }
}

// -- the frame's copies ----------------------------------------------------------------------------------------
// One block (Triton: _frame_start_kernel): frames[t][0] = c0; code-predictor rows [talker hidden, E0(c0)];
// frame sum = E0(c0).
template <typename T>
__global__ void __launch_bounds__(256)
frame_start_kernel(const int64_t* code0, int64_t* frame, const T* past_hidden, const T* embedding, T* inputs,
                   typename Num<T>::acc* frame_sum, int H) {
  const int64_t c0 = *code0;
  if (threadIdx.x == 0) *frame = c0;
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    const T e = embedding[c0 * H + h];
    inputs[h] = past_hidden[h];
    inputs[H + h] = e;
    frame_sum[h] = Num<T>::wide(e);
  }
}

// One block (Triton: _talker_input_kernel): the talker's input of frame t = the 16 codebook embeddings' sum
// (rounded once) + text row min(t, text_len); its position min(P + t, max_position).
template <typename T>
__global__ void __launch_bounds__(256)
talker_input_kernel(const typename Num<T>::acc* frame_sum, const T* text_track, const int64_t* step,
                    const int64_t* text_len, const int64_t* prompt_len, int64_t max_position, T* out,
                    int64_t* position, int H) {
  const int64_t t = *step;
  const int64_t row = t < *text_len ? t : *text_len;
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    const T embed = Num<T>::round(frame_sum[h]);
    out[h] = Num<T>::round(Num<T>::wide(embed) + Num<T>::wide(text_track[row * H + h]));
  }
  if (threadIdx.x == 0) {
    const int64_t p = *prompt_len + t;
    *position = p < max_position ? p : max_position;
  }
}

}  // namespace q3tts
