#!/usr/bin/env bash
# The GPU run (through the device tool; see BENCHMARKS.md): gpu-marked engine tests, full-size parity
# against qwen-tts, the speed benchmark, and the streaming codec's per-chunk time. Writes logs and JSON into
# ${OUT:-bench/results/latest}.
#   Wheels for qwen-tts 0.1.1 + transformers 4.57.3 (the device image has transformers 5.x) are carried in
#   .whl/ and installed into /tmp/site, which goes first on PYTHONPATH. Stages: tests parity teacher profile
#   framegraph bench codec overlap overlapbench endurance cycles node0b6 node1b7 (default: tests parity bench
#   codec). teacher: bench/teacher_forced.py (per-step logits error, float32 and bf16, every path; not yet
#   run on a GPU: expect minutes a size, qwen-tts's own loop takes ~0.2 s a frame). endurance and cycles (bench/endurance.py) take ~5 min each on an H100: run them in their own
#   device calls. overlap: the side-stream codec's gpu tests; overlapbench: the 0.6B benchmark with the codec
#   on the side and on the main stream (each a few minutes: their own device calls too). node0b6 / node1b7:
#   bench/endurance_node_defaults.py (the node's worker with config/tts.yaml's defaults) on full-size 0.6B /
#   1.7B, one device call each: it stops by itself ENDURANCE_BUDGET_S (default 510) seconds after this script
#   started (wheel install included) and writes endurance_node_<size>.json / .log; ENDURANCE_ARGS adds
#   options (e.g. "--tracemalloc 1 --malloc-trim --shape-probe 40"). PARITY_PATHS (default "reference fused"),
#   FRAME_PATHS (bench; default auto) and BENCH_ARGS choose frame paths and benchmark options; peers: the peers of
#   ../shared/bench/anchors.py (PEER_MODES, default hybrid) from .whl/peers/ (bench/fetch_device_wheels.sh).
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
    # shellcheck disable=SC2086
    parity) python3 bench/gpu_parity.py --sizes 0b6 1b7 --frames 100 --paths ${PARITY_PATHS:-reference fused} \
      --out "$out/parity.json" 2>&1 | tee "$out/parity.log" || rc=1 ;;
    teacher) python3 bench/teacher_forced.py --sizes 0b6 1b7 --frames 100 --out "$out/teacher_forced.json" 2>&1 | tee "$out/teacher_forced.log" || rc=1 ;;
    profile) python3 bench/profile_frame.py --sizes 0b6 1b7 --frames 200 --out "$out/profile.json" 2>&1 | tee "$out/profile.log" || rc=1 ;;
    framegraph) python3 bench/framegraph_smoke.py --size 0b6 --frames 300 --out "$out/framegraph.json" 2>&1 | tee "$out/framegraph.log" || rc=1 ;;
    # shellcheck disable=SC2086
    bench) python3 bench/benchmark.py --sizes 0b6 1b7 --frames 300 --frame-paths ${FRAME_PATHS:-auto} ${BENCH_ARGS:-} \
      --out "$out" 2>&1 | tee "$out/benchmark.log" || rc=1 ;;
    peers)  # ../shared/bench/anchors.py's best peers on the same GPU (bench/fetch_device_wheels.sh puts them in .whl/)
      audio=$(ls .whl/*.whl | grep -E 'librosa|soundfile|soxr|sox-|audioread|pooch|platformdirs|decorator|cffi|lazy_loader')
      # shellcheck disable=SC2086
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peers \
        .whl/peers/*.whl $audio || rc=1
      for mode in ${PEER_MODES:-hybrid}; do
        for size in 0b6 1b7; do
          PYTHONPATH=/tmp/peers timeout 150 python3 .whl/anchors.py "$mode" $size 300 2>&1 | grep '^{' >> "$out/peers.jsonl" || rc=1
        done
      done
      cat "$out/peers.jsonl" ;;
    overlap) python3 -m pytest -q -s -p no:cacheprovider -m gpu test/engine/test_codec_overlap_gpu.py 2>&1 | tee "$out/overlap_tests.log" || rc=1 ;;
    overlapbench) python3 bench/benchmark.py --sizes 0b6 --frames 300 --no-qwen-tts --codec-stream both --out "$out/overlap" 2>&1 | tee "$out/overlap_bench.log" || rc=1 ;;
    codec) python3 bench/codec_stream.py --device cuda --dtype bfloat16 --out "$out/codec_stream.json" 2>&1 | tee "$out/codec_stream.log" || rc=1 ;;
    endurance) python3 bench/endurance.py --size 0b6 --utterances 500 --out "$out/endurance.json" 2>&1 | tee "$out/endurance.log" || rc=1 ;;
    cycles) python3 bench/endurance.py --size 0b6 --utterances 0 --cycles 20 --out "$out/cycles.json" 2>&1 | tee "$out/cycles.log" || rc=1 ;;
    node0b6|node1b7)
      size=${stage#node}
      # shellcheck disable=SC2086
      python3 bench/endurance_node_defaults.py --size "$size" --budget-s $((${ENDURANCE_BUDGET_S:-510} - SECONDS)) \
        ${ENDURANCE_ARGS:-} --out "$out/endurance_node_$size.json" 2>&1 | tee "$out/endurance_node_$size.log" || rc=1 ;;
    *) echo "unknown stage $stage"; rc=1 ;;
  esac
done
exit $rc
