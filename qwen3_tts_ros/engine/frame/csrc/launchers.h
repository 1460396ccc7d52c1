// The fused frame's CUDA kernels as plain C functions over raw device pointers (kernels.cu defines them).
// No torch here: binding.cpp (torch) calls these; CI compiles kernels.cu alone with nvcc
// (test/engine/test_nvcc_compile.py). Every function enqueues one kernel on `stream` and returns
// cudaGetLastError() (a bad launch configuration shows up here, not at the next synchronisation).
#pragma once
#include <cuda_runtime_api.h>
#include <stdint.h>

namespace q3tts {

// The model dtype: selects the kernels' element type (accumulation is float32, float64 for kFloat64).
enum DType : int { kBFloat16 = 0, kFloat16 = 1, kFloat32 = 2, kFloat64 = 3 };

// gemv epilogues (kernels.cuh, gemv_kernel); the same numbering as the Triton kernel's EPILOGUE.
enum Epilogue : int { kStore = 0, kResidual = 1, kSwiGLU = 2, kLogits = 3, kBias = 4 };

struct GemvArgs {
  const void* x; int64_t x_stride;  // M rows of K elements
  const void* norm;                 // RMSNorm weight (K) or nullptr: no norm prologue
  const void* weight;               // (N, K) or (2N, K) for SwiGLU, rows contiguous
  void* out; int64_t out_stride;    // model dtype, float32 for kLogits
  const void* residual; int64_t residual_stride;
  const void* bias;                 // (N) for kBias
  void* normed;                     // or nullptr: block 0 stores the normalised rows (x_stride apart)
  float eps;
  int n, k, m;                      // m in {1, 2}
  int epilogue;
};
cudaError_t launch_gemv(DType dtype, const GemvArgs& a, cudaStream_t stream);

struct AttentionArgs {
  const void* qkv; int64_t qkv_stride;      // S rows [q (heads*D) | k (kv*D) | v (kv*D)]
  const void* q_norm; const void* k_norm;   // (D) each
  const void* cos; const void* sin;         // (cache_len, D) tables
  const int64_t* positions;                 // (S)
  void* k_cache; void* v_cache;             // (kv_heads, cache_len, D) each
  void* out; int64_t out_stride;            // splits == 1: S rows of heads*D
  void* part_m; void* part_l; void* part_o; // splits > 1 (S == 1): (heads, splits), (heads, splits, D)
  float eps; double scale;
  int split_len, cache_len, s, kv_heads, nrep, d, splits;
};
cudaError_t launch_attention(DType dtype, const AttentionArgs& a, cudaStream_t stream);

cudaError_t launch_combine(DType dtype, const void* part_m, const void* part_l, const void* part_o, void* out,
                           int heads, int splits, int d, cudaStream_t stream);

struct SampleArgs {
  const float* logits; const float* noise; int64_t* code; int v;
  const uint8_t* do_sample; const float* temperature_reciprocal; const int64_t* top_k;
  const float* one_minus_top_p;
  // process (talker): qwen-tts's logits processing and the sampler's counters; else nullptr
  uint8_t* seen; const uint8_t* eos_mask; const uint8_t* suppress_mask; const float* penalty_factor;
  const float* penalty_reciprocal; int64_t* generated; const int64_t* min_new_tokens; int64_t* step;
  // embed (code predictor): the chosen row of `embedding` (., h) -> next_input, added to frame_sum
  const void* embedding; void* next_input; void* frame_sum; int h;
  int process, embed;
};
cudaError_t launch_sample(DType dtype, const SampleArgs& a, cudaStream_t stream);

cudaError_t launch_frame_start(DType dtype, const int64_t* code0, int64_t* frame, const void* past_hidden,
                               const void* embedding, void* inputs, void* frame_sum, int h, cudaStream_t stream);

cudaError_t launch_talker_input(DType dtype, const void* frame_sum, const void* text_track, const int64_t* step,
                                const int64_t* text_len, const int64_t* prompt_len, int64_t max_position,
                                void* out, int64_t* position, int h, cudaStream_t stream);

}  // namespace q3tts
