#!/usr/bin/env bash
# The GPU run (through the device tool; see BENCHMARKS.md): gpu-marked engine tests, full-size parity
# against qwen-tts, the speed benchmark, and the streaming codec's per-chunk time. Writes logs and JSON into
# ${OUT:-bench/results/latest}.
#   Wheels for qwen-tts 0.1.1 + transformers 4.57.3 (the device image has transformers 5.x) are carried in
#   .whl/ and installed into /tmp/site, which goes first on PYTHONPATH. Stages: tests parity profile
#   framegraph bench codec (default: tests parity bench codec).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench/results/latest}"
mkdir -p "$out"
stages="${*:-tests parity bench codec}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, transformers, qwen_tts, numpy; print("torch", torch.__version__, "transformers", transformers.__version__, "numpy", numpy.__version__)' | tee -a "$out/gpu.txt"
rc=0
for stage in $stages; do
  case $stage in
    tests) python3 -m pytest -q -p no:cacheprovider -m gpu test/engine 2>&1 | tee "$out/gpu_tests.log" || rc=1 ;;
    parity) python3 bench/gpu_parity.py --sizes 0b6 1b7 --frames 100 --out "$out/parity.json" 2>&1 | tee "$out/parity.log" || rc=1 ;;
    profile) python3 bench/profile_frame.py --sizes 0b6 1b7 --frames 200 --out "$out/profile.json" 2>&1 | tee "$out/profile.log" || rc=1 ;;
    framegraph) python3 bench/framegraph_smoke.py --size 0b6 --frames 300 --out "$out/framegraph.json" 2>&1 | tee "$out/framegraph.log" || rc=1 ;;
    bench) python3 bench/benchmark.py --sizes 0b6 1b7 --frames 300 --out "$out" 2>&1 | tee "$out/benchmark.log" || rc=1 ;;
    codec) python3 bench/codec_stream.py --device cuda --dtype bfloat16 --out "$out/codec_stream.json" 2>&1 | tee "$out/codec_stream.log" || rc=1 ;;
    *) echo "unknown stage $stage"; rc=1 ;;
  esac
done
exit $rc
