#!/usr/bin/env bash
# README's test command: set up (idempotent), lint, then every test.
#   1. the engine tests under numpy<2 (Jetson stacks are numpy 1.x), in a venv without ROS;
#   2. the whole suite (engine + ROS integration) with real rclpy and DDS; its summary line is printed last.
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

echo "== all tests (numpy $(python -c 'import numpy; print(numpy.__version__)'), real rclpy + DDS)"
python -m pytest -q -p no:cacheprovider "$@"
