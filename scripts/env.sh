# Source after scripts/setup_env.sh: the main virtualenv, the colcon-built messages, this source tree.
# (Sourced by bash; no `set -e` here, it would leak into the caller's shell.)
QWEN3_TTS_ROS_HOME="${QWEN3_TTS_ROS_HOME:-$HOME/.cache/qwen3_tts_ros}"
_q3_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$QWEN3_TTS_ROS_HOME/venv/bin/activate" ] || [ ! -f "$QWEN3_TTS_ROS_HOME/ws/install/setup.bash" ]; then
  echo "scripts/env.sh: no set-up in $QWEN3_TTS_ROS_HOME (QWEN3_TTS_ROS_HOME): run \`bash $_q3_repo/scripts/setup_env.sh\` first" >&2
  unset _q3_repo
  return 1 2>/dev/null || exit 1
fi
# Callers may run with `set -u`; activate and colcon's setup.bash read unset variables (COLCON_TRACE, ...).
case $- in *u*) _q3_nounset=1; set +u ;; *) _q3_nounset= ;; esac
# shellcheck disable=SC1091
source "$QWEN3_TTS_ROS_HOME/venv/bin/activate"
AMENT_PREFIX_PATH="$QWEN3_TTS_ROS_HOME/venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
CMAKE_PREFIX_PATH="$QWEN3_TTS_ROS_HOME/venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH CMAKE_PREFIX_PATH
# shellcheck disable=SC1091
source "$QWEN3_TTS_ROS_HOME/ws/install/setup.bash"
if [ -n "$_q3_nounset" ]; then set -u; fi
# The source tree comes first, so tests import the code being tested; `qwen3_tts_ros.msg` is found in
# the colcon install through the package's extend_path.
export PYTHONPATH="$_q3_repo${PYTHONPATH:+:$PYTHONPATH}"
export QWEN3_TTS_ROS_HOME QWEN3_TTS_ROS_WS="$QWEN3_TTS_ROS_HOME/ws/install"
export QWEN3_TTS_ROS_VENV_NUMPY1="$QWEN3_TTS_ROS_HOME/venv-numpy1"
# Compatibility stacks of scripts/test.sh's parity passes (see scripts/setup_env.sh).
export QWEN3_TTS_ROS_VENV_PY310="$QWEN3_TTS_ROS_HOME/venv-py310"
export QWEN3_TTS_ROS_SITE_TRANSFORMERS5="$QWEN3_TTS_ROS_HOME/site-transformers5"
# Keep DDS traffic of tests on this machine and away from other ROS users.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _q3_repo _q3_nounset
