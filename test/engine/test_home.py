"""The per-user directory and the persistent compiled-kernel cache the node and CLI point inductor at."""

from qwen3_tts_ros.engine.checkpoints.demo_checkpoint import demo_checkpoint_dir
from qwen3_tts_ros.home import home_dir, keep_compiled_kernels


def test_home_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN3_TTS_ROS_HOME", str(tmp_path))
    assert home_dir() == tmp_path
    assert demo_checkpoint_dir().parent == tmp_path / "demo"
    monkeypatch.delenv("QWEN3_TTS_ROS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert home_dir() == tmp_path / "user" / ".cache" / "qwen3_tts_ros"


def test_compiled_kernels_are_kept_in_home_unless_the_user_chose_a_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN3_TTS_ROS_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert keep_compiled_kernels() == str(tmp_path / "inductor")
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/else")
    assert keep_compiled_kernels() == "/somewhere/else"
