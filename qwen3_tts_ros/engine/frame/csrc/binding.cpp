// Torch binding of the fused frame's CUDA kernels (launchers.h): checks the tensors, takes their pointers and
// the current stream, and raises on a launch error. The only file here that includes torch headers.
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <optional>

#include "launchers.h"

namespace {

using torch::Tensor;
using OptTensor = std::optional<Tensor>;

q3tts::DType dtype_of(const Tensor& t) {
  switch (t.scalar_type()) {
    case at::kBFloat16: return q3tts::kBFloat16;
    case at::kHalf: return q3tts::kFloat16;
    case at::kFloat: return q3tts::kFloat32;
    case at::kDouble: return q3tts::kFloat64;
    default: TORCH_CHECK(false, "fused CUDA frame: unsupported dtype ", t.scalar_type());
  }
}

const void* ptr(const OptTensor& t) { return t.has_value() ? t->data_ptr() : nullptr; }
void* mutable_ptr(const OptTensor& t) { return t.has_value() ? t->data_ptr() : nullptr; }

void check(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "fused CUDA frame: ", what, " launch failed: ", cudaGetErrorString(err));
}

// The current stream of the tensors' device (a CUDA-graph capture records on it).
cudaStream_t stream(const Tensor& on) { return c10::cuda::getCurrentCUDAStream(on.device().index()).stream(); }

void gemv(const Tensor& x, const OptTensor& norm, const Tensor& weight, const Tensor& out, const OptTensor& residual,
          const OptTensor& bias, const OptTensor& normed, double eps, int64_t epilogue) {
  TORCH_CHECK(x.is_cuda() && weight.is_contiguous() && x.stride(1) == 1 && out.stride(-1) == 1, "gemv: layout");
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "gemv: x and weight dtypes differ");
  q3tts::GemvArgs a{};
  a.x = x.data_ptr(); a.x_stride = x.stride(0);
  a.norm = ptr(norm); a.weight = weight.data_ptr();
  a.out = out.data_ptr(); a.out_stride = out.dim() == 2 ? out.stride(0) : 0;  // 1-D: one row (logits)
  a.residual = ptr(residual); a.residual_stride = residual.has_value() ? residual->stride(0) : 0;
  a.bias = ptr(bias); a.normed = mutable_ptr(normed);
  a.eps = static_cast<float>(eps);
  a.k = static_cast<int>(x.size(1)); a.m = static_cast<int>(x.size(0));
  a.n = static_cast<int>(epilogue == q3tts::kSwiGLU ? weight.size(0) / 2 : weight.size(0));
  a.epilogue = static_cast<int>(epilogue);
  TORCH_CHECK(weight.size(1) == a.k, "gemv: weight is (N, ", weight.size(1), "), x has ", a.k, " columns");
  check(q3tts::launch_gemv(dtype_of(weight), a, stream(weight)), "gemv");
}

void attention(const Tensor& qkv, const Tensor& q_norm, const Tensor& k_norm, const Tensor& cos, const Tensor& sin,
               const Tensor& positions, const Tensor& k_cache, const Tensor& v_cache, const Tensor& out,
               const Tensor& part_m, const Tensor& part_l, const Tensor& part_o, double eps, double scale,
               int64_t split_len, int64_t splits, int64_t kv_heads, int64_t nrep, int64_t head_dim) {
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && qkv.stride(1) == 1, "attention: layout");
  q3tts::AttentionArgs a{};
  a.qkv = qkv.data_ptr(); a.qkv_stride = qkv.stride(0);
  a.q_norm = q_norm.data_ptr(); a.k_norm = k_norm.data_ptr();
  a.cos = cos.data_ptr(); a.sin = sin.data_ptr();
  a.positions = positions.data_ptr<int64_t>();
  a.k_cache = k_cache.data_ptr(); a.v_cache = v_cache.data_ptr();
  a.out = out.data_ptr(); a.out_stride = out.stride(0);
  a.part_m = part_m.data_ptr(); a.part_l = part_l.data_ptr(); a.part_o = part_o.data_ptr();
  a.eps = static_cast<float>(eps); a.scale = scale;
  a.split_len = static_cast<int>(split_len); a.cache_len = static_cast<int>(k_cache.size(-2));
  a.s = static_cast<int>(qkv.size(0)); a.kv_heads = static_cast<int>(kv_heads); a.nrep = static_cast<int>(nrep);
  a.d = static_cast<int>(head_dim); a.splits = static_cast<int>(splits);
  check(q3tts::launch_attention(dtype_of(qkv), a, stream(qkv)), "attention");
}

void combine(const Tensor& part_m, const Tensor& part_l, const Tensor& part_o, const Tensor& out) {
  check(q3tts::launch_combine(dtype_of(out), part_m.data_ptr(), part_l.data_ptr(), part_o.data_ptr(),
                              out.data_ptr(), static_cast<int>(part_o.size(0)), static_cast<int>(part_o.size(1)),
                              static_cast<int>(part_o.size(2)), stream(out)),
        "combine");
}

// process: seen, eos_mask, suppress_mask (uint8 views), penalty_factor, penalty_reciprocal, generated,
// min_new_tokens, step; embed: embedding, next_input, frame_sum. Absent groups: nullptr.
void sample(const Tensor& logits, const Tensor& noise, const Tensor& code, const Tensor& do_sample,
            const Tensor& temperature_reciprocal, const Tensor& top_k, const Tensor& one_minus_top_p,
            const std::vector<Tensor>& process, const std::vector<Tensor>& embed, const Tensor& model_dtype) {
  TORCH_CHECK(logits.scalar_type() == at::kFloat && noise.scalar_type() == at::kFloat, "sample: float32 logits");
  TORCH_CHECK(process.empty() || process.size() == 8, "sample: 8 process tensors");
  TORCH_CHECK(embed.empty() || embed.size() == 3, "sample: 3 embed tensors");
  q3tts::SampleArgs a{};
  a.logits = logits.data_ptr<float>(); a.noise = noise.data_ptr<float>(); a.code = code.data_ptr<int64_t>();
  a.v = static_cast<int>(logits.numel());
  a.do_sample = do_sample.data_ptr<uint8_t>();
  a.temperature_reciprocal = temperature_reciprocal.data_ptr<float>();
  a.top_k = top_k.data_ptr<int64_t>(); a.one_minus_top_p = one_minus_top_p.data_ptr<float>();
  a.process = !process.empty();
  if (a.process) {
    a.seen = process[0].data_ptr<uint8_t>(); a.eos_mask = process[1].data_ptr<uint8_t>();
    a.suppress_mask = process[2].data_ptr<uint8_t>(); a.penalty_factor = process[3].data_ptr<float>();
    a.penalty_reciprocal = process[4].data_ptr<float>(); a.generated = process[5].data_ptr<int64_t>();
    a.min_new_tokens = process[6].data_ptr<int64_t>(); a.step = process[7].data_ptr<int64_t>();
  }
  a.embed = !embed.empty();
  if (a.embed) {
    a.embedding = embed[0].data_ptr(); a.next_input = embed[1].data_ptr(); a.frame_sum = embed[2].data_ptr();
    a.h = static_cast<int>(embed[0].size(1));
  }
  check(q3tts::launch_sample(dtype_of(model_dtype), a, stream(logits)), "sample");
}

void frame_start(const Tensor& code0, const Tensor& frame, const Tensor& past_hidden, const Tensor& embedding,
                 const Tensor& inputs, const Tensor& frame_sum) {
  check(q3tts::launch_frame_start(dtype_of(embedding), code0.data_ptr<int64_t>(), frame.data_ptr<int64_t>(),
                                  past_hidden.data_ptr(), embedding.data_ptr(), inputs.data_ptr(),
                                  frame_sum.data_ptr(), static_cast<int>(embedding.size(1)), stream(embedding)),
        "frame_start");
}

void talker_input(const Tensor& frame_sum, const Tensor& text_track, const Tensor& step, const Tensor& text_len,
                  const Tensor& prompt_len, int64_t max_position, const Tensor& out, const Tensor& position) {
  check(q3tts::launch_talker_input(dtype_of(out), frame_sum.data_ptr(), text_track.data_ptr(),
                                   step.data_ptr<int64_t>(), text_len.data_ptr<int64_t>(),
                                   prompt_len.data_ptr<int64_t>(), max_position, out.data_ptr(),
                                   position.data_ptr<int64_t>(), static_cast<int>(out.size(-1)), stream(out)),
        "talker_input");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gemv", &gemv);
  m.def("attention", &attention);
  m.def("combine", &combine);
  m.def("sample", &sample);
  m.def("frame_start", &frame_start);
  m.def("talker_input", &talker_input);
}
