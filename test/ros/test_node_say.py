"""scripts/say.py (README's main job) as a user runs it: a real node process from config/tts.yaml, driven to
active through the lifecycle services, one sentence in, a WAV file and latency figures out."""
import json
import os
import pathlib
import subprocess
import sys
import wave

import pytest

pytestmark = pytest.mark.ros

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_say(tmp_path, *args, timeout=300):
    env = dict(os.environ, QWEN3_TTS_ROS_SAY_JSON=str(tmp_path / "summary.json"))
    cmd = [sys.executable, str(REPO / "scripts" / "say.py"), "--out", str(tmp_path / "say.wav"),
           "--namespace", f"/say{os.getpid()}", "--timeout", "120", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_say_writes_the_wav_and_prints_latency(tmp_path, tiny_custom_voice_checkpoint):
    done = run_say(tmp_path, "-p", f"model:={tiny_custom_voice_checkpoint}", "-p", "warmup.text:=''",
                   "-p", "sampling.max_new_tokens:=12", "Hello there, robot.")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "time to first audio, end to end" in done.stdout and "real-time factor" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    with wave.open(str(tmp_path / "say.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() == round(summary["audio_seconds"] * 24000) > 0
        assert w.getnframes() % 1920 == 0 and w.getnframes() <= 12 * 1920
    assert summary["e2e_ttfa_ms"] >= summary["node_ttfa_ms"] > 0


def test_say_fails_cleanly_without_a_model(tmp_path):
    done = run_say(tmp_path, "-p", "model:=/nonexistent/model_dir", "Hello.", timeout=120)
    assert done.returncode == 1
    assert "configure failed" in done.stderr and "/nonexistent/model_dir" in done.stderr
    assert not (tmp_path / "say.wav").exists()


def test_say_action_sends_a_goal_and_waits_for_its_result(tmp_path, tiny_custom_voice_checkpoint):
    done = run_say(tmp_path, "-p", f"model:={tiny_custom_voice_checkpoint}", "-p", "warmup.text:=''",
                   "-p", "sampling.max_new_tokens:=12", "--action", "--wait-for-playback",
                   "Hello there. See you later.")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "say goal succeeded: ended by done" in done.stdout, done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["utterances"] == 2, "one goal, two sentences"
    with wave.open(str(tmp_path / "say.wav")) as w:
        assert w.getnframes() == round(summary["audio_seconds"] * 24000) > 0
