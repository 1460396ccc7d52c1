#!/usr/bin/env bash
# README's test command: set up (idempotent), lint, then every test.
#   1. the engine tests under numpy<2 (Jetson stacks are numpy 1.x), in a venv without ROS, and side by side
#   2. the engine parity tests under Python 3.10 + torch 2.3.1 + numpy<2, then under transformers 5.17 +
#      qwen-tts-compat (docs/COMPATIBILITY.md);
#   3. then the whole suite (engine + ROS integration) with real rclpy and DDS; its summary line is printed last.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
# shellcheck disable=SC1091
source scripts/env.sh

echo "== ruff (py310 target)"
ruff check .

# The engine passes on the other stacks. They need no ROS and assert no timings, so they run side by side,
# one thread each by default (2 cores: about half the time of running them in turn; QWEN3_TTS_ROS_PASS_THREADS
# sets another count); each one's output is printed, in order, once it is done. The whole suite after them
# runs alone. A failing pass does not stop the run: everything is run, every summary line is printed at the
# end, and the exit status is non-zero if anything failed.
passes="$(mktemp -d)"
trap 'rm -rf "$passes"' EXIT
pass_threads="${QWEN3_TTS_ROS_PASS_THREADS:-1}"
engine_pass() {  # log name, python, PYTHONPATH, stack check (python code), pytest arguments...
  local name=$1 py=$2 path=$3 check=$4
  shift 4
  { PYTHONPATH="$path" "$py" -c "$check" &&
    PYTHONPATH="$path" OMP_NUM_THREADS="$pass_threads" "$py" -m pytest -q -p no:cacheprovider "$@"; } \
    >"$passes/$name.log" 2>&1
}
versions='import sys, numpy, torch, transformers, qwen_tts
print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__,
      "transformers", transformers.__version__, "qwen_tts from", qwen_tts.__file__)'
# Engine parity on two other stacks (what the engine must run on besides CI's main one).
# test_incremental_text: the text tokenizer is another class under transformers 5 (its commit rules read it).
parity_tests=(test/engine/test_codes_parity.py test/engine/test_prefill_parity.py test/engine/test_api_parity.py
  test/engine/test_api_streaming.py test/engine/test_frame_generator.py test/engine/test_layers.py
  test/engine/test_loading.py test/engine/test_incremental_text.py)

# The kernel compile checks (orin: Triton for sm_87..., nvcc: the CUDA C++ frame) use no numpy: the whole suite
# runs them once.
engine_pass numpy1 "$QWEN3_TTS_ROS_VENV_NUMPY1/bin/python" "$repo" "$versions
assert numpy.__version__ < '2'" test/engine -m "not ros" -k "not orin and not nvcc" "$@" &
numpy1=$!
(
  status=0
  if [ -x "$QWEN3_TTS_ROS_VENV_PY310/bin/python" ]; then
    engine_pass py310 "$QWEN3_TTS_ROS_VENV_PY310/bin/python" "$repo" "$versions
assert sys.version_info[:2] == (3, 10) and torch.__version__.startswith('2.3.') and numpy.__version__ < '2'" \
      "${parity_tests[@]}" "$@" || status=1
  else
    echo "skipped: no Python 3.10 on this machine (scripts/setup_env.sh looks for python3.10 and pyenv's)" \
      >"$passes/py310.log"
  fi
  engine_pass transformers5 python "$QWEN3_TTS_ROS_SITE_TRANSFORMERS5:$repo" "$versions
assert transformers.__version__.startswith('5.') and qwen_tts.__file__.startswith('$QWEN3_TTS_ROS_SITE_TRANSFORMERS5')" \
    "${parity_tests[@]}" "$@" || status=1
  exit $status
) &
others=$!
declare -A result
wait "$numpy1" && result[numpy1]=passed || result[numpy1]=FAILED
echo "== engine tests under numpy<2"
cat "$passes/numpy1.log"
wait "$others" && result[others]=passed || result[others]=FAILED
echo "== engine parity under Python 3.10 + torch 2.3.1 + numpy<2 (JetPack 6: its Python, JetPack 6.0's torch)"
cat "$passes/py310.log"
echo "== engine parity under transformers 5.17 + qwen-tts-compat 0.1.1.post1 (overlay on the main venv)"
cat "$passes/transformers5.log" 2>/dev/null || true

echo "== all tests (numpy $(python -c 'import numpy; print(numpy.__version__)'), real rclpy + DDS)"
python -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$passes/all.log" && result[all]=passed || result[all]=FAILED

summary() {  # pytest's closing line of a log ("N passed, M skipped in T s" / "N failed, ...")
  grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped|deselected)|no tests ran' "$1" 2>/dev/null | tail -1 || true
}
echo "== summary"
echo "engine tests under numpy<2: ${result[numpy1]}: $(summary "$passes/numpy1.log")"
echo "engine parity under Python 3.10 + torch 2.3.1: $(summary "$passes/py310.log")$(grep -h '^skipped:' "$passes/py310.log" || true)"
echo "engine parity under transformers 5.17: $(summary "$passes/transformers5.log")"
echo "(the two parity passes together: ${result[others]})"
echo "all tests: ${result[all]}: $(summary "$passes/all.log")"
for name in numpy1 others all; do
  [ "${result[$name]}" = passed ] || { echo "FAILED: see the sections above"; exit 1; }
done
# The whole suite's own summary line, last (CI reads the closing line of the test runner).
summary "$passes/all.log"
