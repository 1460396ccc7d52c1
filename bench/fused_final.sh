#!/usr/bin/env bash
# One device call (issue 15): float32 / bf16 parity of the fused frame on 1.7B, bench/benchmark.py on both
# sizes, then the peers of shared/bench/anchors.py (copied into .whl/, with their wheels in .whl/peers/) in
# the same call, so that the ratios compare runs on one GPU. Writes into $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench/results/latest}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
audio=$(ls .whl/*.whl | grep -E 'librosa|soundfile|soxr|sox-|audioread|pooch|platformdirs|decorator|cffi')
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peers .whl/peers/*.whl $audio || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt"
PYTHONPATH=/tmp/site:$PWD timeout "${PARITY_S:-170}" python3 bench/gpu_parity.py --sizes 1b7 --frames 100 --paths fused \
  --out "$out/parity_1b7.json" > "$out/parity_1b7.log" 2>&1
PYTHONPATH=/tmp/site:$PWD timeout "${BENCH_S:-240}" python3 bench/benchmark.py --sizes 0b6 1b7 --frames 300 --no-qwen-tts --codec-stream on \
  --out "$out" > "$out/benchmark.log" 2>&1
for size in 0b6 1b7; do
  PYTHONPATH=/tmp/peers timeout 100 python3 .whl/anchors.py hybrid $size 300 2>&1 | grep '^{' >> "$out/peers.jsonl"
done
grep -h '^{' "$out"/*.log "$out/peers.jsonl" | cut -c1-600
