#!/usr/bin/env bash
# The exact wheel set a GPU device run needs (BENCHMARKS.md: "Reproduce"), downloaded into .whl/ (ignored by git):
#   .whl/        qwen-tts 0.1.1 with the transformers 4.57.3 stack it pins, and the audio libraries it imports
#                (the device image has torch/triton/numpy/accelerate/onnxruntime/einops, and transformers 5.x);
#   .whl/peers/  the peers of ../shared/bench/anchors.py (faster-qwen3-tts, qwen3-tts-triton, qwen-tts-hf), with
#                anchors.py copied beside them (bench/fused_final.sh installs them into their own --target dir).
# For CPython 3.12 x86_64 (the device image). Usage: bash bench/fetch_device_wheels.sh [--no-peers]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
get() {  # get DIR NAME==VERSION...
  local dir=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}
audio="librosa==0.11.0 soundfile==0.13.1 soxr==1.0.0 sox==1.4.1 audioread==3.0.1 pooch==1.8.2 platformdirs==4.5.0
  decorator==5.2.1 cffi==2.0.0 pycparser==2.23 lazy_loader==0.4"
# shellcheck disable=SC2086
get .whl qwen-tts==0.1.1 transformers==4.57.3 tokenizers==0.22.2 huggingface_hub==0.36.2 $audio
if [ "${1:-}" != --no-peers ]; then
  get .whl/peers faster-qwen3-tts==0.5.4 qwen3-tts-triton==0.3.0 qwen-tts-hf==0.1.1.post1
  cp ../shared/bench/anchors.py .whl/anchors.py
fi
du -sh .whl
