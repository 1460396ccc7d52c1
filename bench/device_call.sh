#!/usr/bin/env bash
# One device call of about 8 minutes (the session's device time is short): the gpu-marked suite on the default
# frame path, the benchmark of the default path and the forced fused CUDA C++ path on both sizes, and the peers of
# ../shared/bench/anchors.py in the same call, so ratios compare runs on one GPU. Writes into $OUT.
# Needs .whl/ and .whl/peers/ (bench/fetch_device_wheels.sh). Limits in seconds: TESTS_S, BENCH_S, PEER_S; SIZES (default "0b6 1b7").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench/results/latest}"
mkdir -p "$out"
whl="${WHL:-.whl}"  # the wheels (bench/fetch_device_wheels.sh); WHL: another folder
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$whl"/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; echo "commit ${COMMIT:-$(git log -1 --format=%H 2>/dev/null)}"
  python3 -c 'import torch, triton, transformers; print("torch", torch.__version__, "triton", triton.__version__, "transformers", transformers.__version__)'; } > "$out/gpu.txt"
timeout "${TESTS_S:-250}" python3 -m pytest -q -p no:cacheprovider -m gpu test/engine > "$out/gpu_tests.log" 2>&1
echo "tests rc=$?" >> "$out/gpu.txt"
# shellcheck disable=SC2086
timeout "${BENCH_S:-170}" python3 bench/benchmark.py --sizes ${SIZES:-0b6 1b7} --frames 300 --frame-paths auto fused-cuda \
  --codec-stream on --no-qwen-tts --out "$out" > "$out/benchmark.log" 2>&1
echo "bench rc=$?" >> "$out/gpu.txt"
audio=$(ls "$whl"/*.whl | grep -E 'librosa|soundfile|soxr|sox-|audioread|pooch|platformdirs|decorator|cffi|lazy_loader')
# shellcheck disable=SC2086
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peers "$whl"/peers/*.whl $audio
for size in ${SIZES:-0b6 1b7}; do
  PYTHONPATH=/tmp/peers timeout "${PEER_S:-80}" python3 "$whl"/anchors.py hybrid $size 300 2>&1 | grep '^{' >> "$out/peers.jsonl"
done
tail -3 "$out/gpu_tests.log"; grep -h '^{' "$out/benchmark.log" | cut -c1-400; cat "$out/peers.jsonl" | cut -c1-300; cat "$out/gpu.txt"
