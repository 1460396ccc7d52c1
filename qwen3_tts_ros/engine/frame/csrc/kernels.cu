// Launchers of the fused frame's kernels (launchers.h): dtype dispatch, grid shapes, shared-memory sizes.
// Plain CUDA (no torch): CI compiles this file alone with nvcc for sm_87 and sm_90.
#include "kernels.cuh"
#include "launchers.h"

namespace q3tts {
namespace {

int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Raise a kernel's dynamic shared-memory limit where a launch nears the default 48 KB for static + dynamic
// shared memory (the kernels' static part is under 1 KB). Not a stream operation: allowed during capture.
template <typename Kernel> cudaError_t allow_shared(Kernel kernel, size_t bytes) {
  if (bytes <= 40 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

template <typename T, int M, bool SWIGLU, int VEC> cudaError_t gemv_as(const GemvArgs& a, cudaStream_t stream) {
  const size_t shared = sizeof(T) * a.m * a.k;
  auto kernel = gemv_kernel<T, M, SWIGLU, VEC>;
  cudaError_t err = allow_shared(kernel, shared);
  if (err != cudaSuccess) return err;
  const int blocks = (a.n + GEMV_WARPS - 1) / GEMV_WARPS;
  kernel<<<blocks, GEMV_WARPS * 32, shared, stream>>>(
      static_cast<const T*>(a.x), a.x_stride, static_cast<const T*>(a.norm), static_cast<const T*>(a.weight), a.out,
      a.out_stride, static_cast<const T*>(a.residual), a.residual_stride, static_cast<const T*>(a.bias),
      static_cast<T*>(a.normed), a.eps, a.n, a.k, a.epilogue);
  return cudaGetLastError();
}

template <typename T, int M, bool SWIGLU> cudaError_t gemv_vec(const GemvArgs& a, cudaStream_t stream) {
  constexpr int VEC = 16 / sizeof(T);
  const bool aligned = a.k % VEC == 0 && reinterpret_cast<uintptr_t>(a.weight) % 16 == 0;
  return aligned ? gemv_as<T, M, SWIGLU, VEC>(a, stream) : gemv_as<T, M, SWIGLU, 1>(a, stream);
}

template <typename T> cudaError_t gemv_typed(const GemvArgs& a, cudaStream_t stream) {
  const bool swiglu = a.epilogue == kSwiGLU;
  if (a.m == 1) return swiglu ? gemv_vec<T, 1, true>(a, stream) : gemv_vec<T, 1, false>(a, stream);
  if (a.m == 2) return swiglu ? gemv_vec<T, 2, true>(a, stream) : gemv_vec<T, 2, false>(a, stream);
  return cudaErrorInvalidValue;
}

template <typename T> cudaError_t attention_typed(const AttentionArgs& a, cudaStream_t stream) {
  using A = typename Num<T>::acc;
  if (a.d > ATTENTION_MAX_D || a.d % 2 != 0 || (a.splits > 1 && a.s != 1)) return cudaErrorInvalidValue;
  const size_t shared = sizeof(A) * (ATTENTION_THREADS / 32) * (a.d + 2) + sizeof(T) * 2 * a.d;
  auto kernel = attention_kernel<T>;
  cudaError_t err = allow_shared(kernel, shared);
  if (err != cudaSuccess) return err;
  const dim3 grid(a.kv_heads * a.nrep, a.splits);
  kernel<<<grid, ATTENTION_THREADS, shared, stream>>>(
      static_cast<const T*>(a.qkv), a.qkv_stride, static_cast<const T*>(a.q_norm), static_cast<const T*>(a.k_norm),
      static_cast<const T*>(a.cos), static_cast<const T*>(a.sin), a.positions, static_cast<T*>(a.k_cache),
      static_cast<T*>(a.v_cache), static_cast<T*>(a.out), a.out_stride, static_cast<A*>(a.part_m),
      static_cast<A*>(a.part_l), static_cast<A*>(a.part_o), a.eps, a.scale, a.split_len, a.cache_len, a.s,
      a.kv_heads, a.nrep, a.d, a.splits);
  return cudaGetLastError();
}

template <typename T>
cudaError_t combine_typed(const void* part_m, const void* part_l, const void* part_o, void* out, int heads,
                          int splits, int d, cudaStream_t stream) {
  using A = typename Num<T>::acc;
  combine_kernel<T><<<heads, COMBINE_THREADS, 0, stream>>>(static_cast<const A*>(part_m),
                                                            static_cast<const A*>(part_l),
                                                            static_cast<const A*>(part_o), static_cast<T*>(out),
                                                            splits, d);
  return cudaGetLastError();
}

template <typename T> cudaError_t sample_typed(const SampleArgs& a, cudaStream_t stream) {
  using A = typename Num<T>::acc;
  const int block_v = next_pow2(a.v);
  const size_t shared = sizeof(float) * 3 * block_v;
  auto kernel = sample_kernel<T>;
  cudaError_t err = allow_shared(kernel, shared);
  if (err != cudaSuccess) return err;
  kernel<<<1, SAMPLE_THREADS, shared, stream>>>(
      a.logits, a.noise, a.code, a.v, a.do_sample, a.temperature_reciprocal, a.top_k, a.one_minus_top_p, a.seen,
      a.eos_mask, a.suppress_mask, a.penalty_factor, a.penalty_reciprocal, a.generated, a.min_new_tokens, a.step,
      static_cast<const T*>(a.embedding), static_cast<T*>(a.next_input), static_cast<A*>(a.frame_sum), a.h,
      block_v, a.process, a.embed);
  return cudaGetLastError();
}

template <typename T>
cudaError_t frame_start_typed(const int64_t* code0, int64_t* frame, const void* past_hidden, const void* embedding,
                              void* inputs, void* frame_sum, int h, cudaStream_t stream) {
  using A = typename Num<T>::acc;
  frame_start_kernel<T><<<1, 256, 0, stream>>>(code0, frame, static_cast<const T*>(past_hidden),
                                               static_cast<const T*>(embedding), static_cast<T*>(inputs),
                                               static_cast<A*>(frame_sum), h);
  return cudaGetLastError();
}

template <typename T>
cudaError_t talker_input_typed(const void* frame_sum, const void* text_track, const int64_t* step,
                               const int64_t* text_len, const int64_t* prompt_len, int64_t max_position, void* out,
                               int64_t* position, int h, cudaStream_t stream) {
  using A = typename Num<T>::acc;
  talker_input_kernel<T><<<1, 256, 0, stream>>>(static_cast<const A*>(frame_sum),
                                                static_cast<const T*>(text_track), step, text_len, prompt_len,
                                                max_position, static_cast<T*>(out), position, h);
  return cudaGetLastError();
}

}  // namespace

#define Q3TTS_DISPATCH(dtype, call)                      \
  switch (dtype) {                                       \
    case kBFloat16: { using T = __nv_bfloat16; return call; } \
    case kFloat16: { using T = __half; return call; }    \
    case kFloat32: { using T = float; return call; }     \
    case kFloat64: { using T = double; return call; }    \
  }                                                      \
  return cudaErrorInvalidValue;

cudaError_t launch_gemv(DType dtype, const GemvArgs& a, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, gemv_typed<T>(a, stream))
}

cudaError_t launch_attention(DType dtype, const AttentionArgs& a, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, attention_typed<T>(a, stream))
}

cudaError_t launch_combine(DType dtype, const void* part_m, const void* part_l, const void* part_o, void* out,
                           int heads, int splits, int d, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, combine_typed<T>(part_m, part_l, part_o, out, heads, splits, d, stream))
}

cudaError_t launch_sample(DType dtype, const SampleArgs& a, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, sample_typed<T>(a, stream))
}

cudaError_t launch_frame_start(DType dtype, const int64_t* code0, int64_t* frame, const void* past_hidden,
                               const void* embedding, void* inputs, void* frame_sum, int h, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, frame_start_typed<T>(code0, frame, past_hidden, embedding, inputs, frame_sum, h, stream))
}

cudaError_t launch_talker_input(DType dtype, const void* frame_sum, const void* text_track, const int64_t* step,
                                const int64_t* text_len, const int64_t* prompt_len, int64_t max_position,
                                void* out, int64_t* position, int h, cudaStream_t stream) {
  Q3TTS_DISPATCH(dtype, talker_input_typed<T>(frame_sum, text_track, step, text_len, prompt_len, max_position, out,
                                              position, h, stream))
}

}  // namespace q3tts
