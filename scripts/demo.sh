#!/usr/bin/env bash
# README's main job: set up (idempotent), start the node with config/tts.yaml, drive it to active through
# the standard lifecycle services, speak one sentence, write the chunks to out/demo.wav and print time to
# first audio and real-time factor.  Arguments go to scripts/say.py (default text if none).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh --demo  # the main virtualenv and the build; not the test-only stacks
# shellcheck disable=SC1091
source scripts/env.sh
exec python scripts/say.py "$@"
