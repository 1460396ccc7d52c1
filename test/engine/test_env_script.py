"""`source scripts/env.sh` where no set-up was made says in one line what to run, and fails (before: two
"No such file or directory" errors from bash and no hint)."""
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_env_sh_without_a_set_up_names_the_set_up_command(tmp_path):
    home = tmp_path / "empty_home"
    home.mkdir()
    proc = subprocess.run(
        ["bash", "-c", 'source scripts/env.sh; echo "status $?"'], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, QWEN3_TTS_ROS_HOME=str(home)), timeout=60,
    )  # fmt: skip
    assert proc.stdout.strip() == "status 1", proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"scripts/env.sh: no set-up in {home} (QWEN3_TTS_ROS_HOME): run "
        f"`bash {REPO}/scripts/setup_env.sh` first"
    ], proc.stderr
