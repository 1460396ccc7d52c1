#!/usr/bin/env bash
# README's test command: set up (idempotent), lint, then every test.
#   1. the engine tests under numpy<2 (Jetson stacks are numpy 1.x), in a venv without ROS;
#   2. the engine parity tests under Python 3.10 + torch 2.3.1 + numpy<2, and under transformers 5.17 +
#      qwen-tts-compat (README: Compatibility);
#   3. the whole suite (engine + ROS integration) with real rclpy and DDS; its summary line is printed last.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
# shellcheck disable=SC1091
source scripts/env.sh

echo "== ruff (py310 target)"
ruff check .

echo "== engine tests under numpy<2"
PYTHONPATH="$repo" "$QWEN3_TTS_ROS_VENV_NUMPY1/bin/python" -c 'import numpy; assert numpy.__version__ < "2", numpy.__version__; print("numpy", numpy.__version__)'
PYTHONPATH="$repo" "$QWEN3_TTS_ROS_VENV_NUMPY1/bin/python" -m pytest -q -p no:cacheprovider test/engine -m "not ros" "$@"

# Engine parity on two other stacks (what the engine must run on besides CI's main one); each pass ~1 min.
parity_tests=(test/engine/test_codes_parity.py test/engine/test_prefill_parity.py test/engine/test_api_parity.py
  test/engine/test_api_streaming.py test/engine/test_frame_generator.py test/engine/test_layers.py
  test/engine/test_loading.py)
versions='import sys, numpy, torch, transformers, qwen_tts
print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__,
      "transformers", transformers.__version__, "qwen_tts from", qwen_tts.__file__)'

echo "== engine parity under Python 3.10 + torch 2.3.1 + numpy<2 (JetPack 6: its Python, JetPack 6.0's torch)"
if [ -x "$QWEN3_TTS_ROS_VENV_PY310/bin/python" ]; then
  PYTHONPATH="$repo" "$QWEN3_TTS_ROS_VENV_PY310/bin/python" -c "$versions
assert sys.version_info[:2] == (3, 10) and torch.__version__.startswith('2.3.') and numpy.__version__ < '2'"
  PYTHONPATH="$repo" "$QWEN3_TTS_ROS_VENV_PY310/bin/python" -m pytest -q -p no:cacheprovider "${parity_tests[@]}" "$@"
else
  echo "skipped: no Python 3.10 on this machine (scripts/setup_env.sh looks for python3.10 and pyenv's)"
fi

echo "== engine parity under transformers 5.17 + qwen-tts-compat 0.1.1.post1 (overlay on the main venv)"
PYTHONPATH="$QWEN3_TTS_ROS_SITE_TRANSFORMERS5:$repo" python -c "$versions
assert transformers.__version__.startswith('5.') and qwen_tts.__file__.startswith('$QWEN3_TTS_ROS_SITE_TRANSFORMERS5')"
PYTHONPATH="$QWEN3_TTS_ROS_SITE_TRANSFORMERS5:$repo" python -m pytest -q -p no:cacheprovider "${parity_tests[@]}" "$@"

echo "== all tests (numpy $(python -c 'import numpy; print(numpy.__version__)'), real rclpy + DDS)"
python -m pytest -q -p no:cacheprovider "$@"
