#!/usr/bin/env bash
# Engine parity on the GPU device under qwen-tts-compat 0.1.1.post1 on the image's own transformers 5 stack
# (transformers 5.17.0, huggingface_hub 1.33.0, tokenizers 0.23.2, accelerate 1.15, torch 2.11+cu130,
# numpy 2.x): the other half of docs/COMPATIBILITY.md's table (CI runs the same CPU tests on transformers 5.17;
# this adds CUDA graphs and full-size models). Through the device tool, from the repository root:
#
#   run  command: bash bench/compat_parity.sh [cpu] [gpu] [parity]      carry: [".whl"]
#
# Stages (default: all three in one call; name fewer to split the run over calls of the 10-minute limit):
#   cpu     compat_cpu_parity.log: test_codes_parity, test_prefill_parity, test_api_parity, test_loading (CPU)
#   gpu     compat_gpu_tests.log: the gpu-marked engine tests (graph-captured output == qwen-tts on CUDA)
#   parity  compat_parity.json/.log: bench/gpu_parity.py on full-size 0.6B/1.7B random models
# Also compat_versions.txt. Everything goes into ${OUT:-bench/results/compat}. Exits non-zero if a stage failed.
#
# Installs with --no-deps into /tmp/site_compat (first on PYTHONPATH), from .whl/: the compat wheel
# (.whl/compat/qwen_tts_compat-0.1.1.post1-py3-none-any.whl) and the audio dependencies the image lacks
# (audioread cffi decorator librosa platformdirs pooch pycparser soundfile sox soxr). It must NOT install the
# other wheels in .whl/: qwen_tts-0.1.1 (the same import name `qwen_tts`: it would shadow the compat build), and
# transformers-4.57.3, tokenizers-0.22.2, huggingface_hub-0.36.0 (they would shadow the image's transformers 5
# stack, which qwen-tts-compat needs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench/results/compat}"
site=/tmp/site_compat
stages="${*:-cpu gpu parity}"
mkdir -p "$out"

wheels=(.whl/compat/qwen_tts_compat-0.1.1.post1-py3-none-any.whl)
for name in audioread cffi decorator librosa platformdirs pooch pycparser soundfile sox soxr; do
  found=(.whl/"$name"-*.whl)
  [ -f "${found[0]}" ] || { echo "missing .whl/$name-*.whl (carry .whl)"; exit 1; }
  wheels+=("${found[0]}")
done
[ -f "${wheels[0]}" ] || { echo "missing ${wheels[0]} (carry .whl)"; exit 1; }
rm -rf "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "${wheels[@]}" || exit 1
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/compat_versions.txt"
python3 - <<EOF 2>&1 | tee -a "$out/compat_versions.txt" || exit 1
import importlib.metadata as md, sys, numpy, torch, transformers, qwen_tts
print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__,
      "transformers", transformers.__version__, "huggingface_hub", md.version("huggingface_hub"),
      "tokenizers", md.version("tokenizers"), "qwen-tts-compat", md.version("qwen-tts-compat"))
print("qwen_tts imported from", qwen_tts.__file__)
assert transformers.__version__.startswith("5."), "the image's transformers 5 is shadowed"
assert qwen_tts.__file__.startswith("$site/"), "qwen_tts is not the compat build"
EOF

rc=0
for stage in ${stages}; do
  case $stage in
    cpu) python3 -m pytest -q -p no:cacheprovider test/engine/test_codes_parity.py test/engine/test_prefill_parity.py \
           test/engine/test_api_parity.py test/engine/test_loading.py 2>&1 | tee "$out/compat_cpu_parity.log" || rc=1 ;;
    gpu) python3 -m pytest -q -p no:cacheprovider -rs -m gpu test/engine 2>&1 | tee "$out/compat_gpu_tests.log" || rc=1 ;;
    # COMPAT_PARITY_ARGS="--device cpu --tiny --frames 20" checks the logic on a CPU.
    # shellcheck disable=SC2086
    parity) python3 bench/gpu_parity.py ${COMPAT_PARITY_ARGS:---sizes 0b6 1b7 --frames 100} \
              --out "$out/compat_parity.json" 2>&1 | tee "$out/compat_parity.log" || rc=1 ;;
    *) echo "unknown stage $stage (cpu, gpu, parity)"; rc=1 ;;
  esac
done
echo "compat parity: $([ $rc = 0 ] && echo PASSED || echo FAILED) (logs in $out)"
exit $rc
