"""configure fails cleanly (FAILURE, node stays unconfigured, nothing stays loaded, one log line naming the
cause) for voice settings that do not fit the model, unusable reference audio, broken model directories and a
max_seq_len the voice prompt leaves no room in; fixing the parameters then configures. Unusual but valid
input (stereo / 44.1 kHz / 60 s reference audio, instruct on a model that ignores it) configures and speaks.

In-process real LifecycleNode driven with trigger_configure (the change_state service's callback).
"""
import shutil
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from qwen3_tts_ros.node.tts_node import TtsNode  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("configure_errors")
    made = {kind: write_tiny_checkpoint(root / kind, kind, seed=5) for kind in ("base", "custom_voice")}
    made["custom_voice_0b6"] = write_tiny_checkpoint(root / "cv_0b6", "custom_voice", seed=5,
                                                     model_size="0b6")
    return made


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """Reference audio files: mono 24 kHz 3 s, stereo 44.1 kHz 3 s, 60 s mono 16 kHz, empty, corrupt."""
    import numpy as np
    import soundfile as sf

    root = tmp_path_factory.mktemp("reference_audio")
    rng = np.random.RandomState(0)

    def tone(seconds, rate):
        t = np.arange(int(seconds * rate)) / rate
        return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.03 * rng.randn(t.size)).astype(np.float32)

    files = {name: root / f"{name}.wav" for name in ("mono", "stereo_44k", "long_60s", "empty", "corrupt")}
    sf.write(files["mono"], tone(3, 24000), 24000)
    sf.write(files["stereo_44k"], np.stack([tone(3, 44100), tone(3, 44100)], axis=1), 44100)
    sf.write(files["long_60s"], tone(60, 16000), 16000)
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    return {name: str(path) for name, path in files.items()}


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    n = TtsNode(context=context, parameter_overrides=[Parameter("device", value="cpu"),
                                                      Parameter("diagnostics.period_s", value=0.0)])
    yield n
    n.close()
    n.destroy_node()
    rclpy.shutdown(context=context)


def _set(node, **values) -> None:
    results = node.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])
    assert all(r.successful for r in results), [r.reason for r in results]


def _configure(node, **values) -> TransitionCallbackReturn:
    results = node.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])
    assert all(r.successful for r in results), [r.reason for r in results]
    return node.trigger_configure()


CASES = [
    ("custom_voice", dict(voice__speaker="nobody")),
    ("custom_voice", dict(voice__mode="voice_clone")),
    ("custom_voice", dict(voice__language="Klingon")),
    ("base", dict(voice__ref_audio="")),  # voice_clone needs a reference
    ("base", dict(voice__ref_audio="https://example.com/ref.wav")),  # URL without allow_download
    ("base", dict(voice__ref_audio="/nonexistent/ref.wav", voice__ref_text="hello")),
    ("base", dict(voice__ref_audio=__file__, voice__ref_text="")),  # a file, but no transcript
]


@pytest.mark.parametrize("kind,values", CASES)
def test_bad_voice_settings_fail_configure_and_leave_the_node_reconfigurable(node, checkpoints, kind, values):
    assert _configure(node, model=str(checkpoints[kind]), **values) == TransitionCallbackReturn.FAILURE
    assert node._worker.model.engine is None, "a failed configure must not keep the model loaded"
    assert not node._configured
    # The node is still unconfigured: fix the parameters and configure again.
    fixed = dict(model=str(checkpoints["custom_voice"]), voice__mode="", voice__speaker="",
                 voice__language="Auto", voice__ref_audio="", voice__ref_text="")
    assert _configure(node, **fixed) == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def _fix_and_configure(node, checkpoints) -> None:
    """The node is still unconfigured and usable: a good configuration configures."""
    assert node._worker.model.engine is None, "a failed configure must not keep the model loaded"
    assert not node._configured
    fixed = dict(model=str(checkpoints["custom_voice"]), voice__mode="", voice__speaker="",
                 voice__instruct="", voice__language="Auto", voice__ref_audio="", voice__ref_text="",
                 max_seq_len=2048)
    assert _configure(node, **fixed) == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize("name,cause", [("empty", "empty"), ("corrupt", "cannot decode")])
def test_unusable_reference_audio_fails_configure(node, checkpoints, audio_files, capfd, name, cause):
    values = dict(model=str(checkpoints["base"]), voice__ref_audio=audio_files[name],
                  voice__ref_text="Hello.")
    assert _configure(node, **values) == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert "configure failed: cannot use voice.ref_audio" in log and cause in log, log[-2000:]
    _fix_and_configure(node, checkpoints)


def test_a_voice_setting_the_models_mode_cannot_use_fails_configure(node, checkpoints, audio_files, capfd):
    """A reference voice given to a CustomVoice model would never be heard: refused, as the CLI refuses it."""
    values = dict(model=str(checkpoints["custom_voice"]), voice__ref_audio=audio_files["mono"],
                  voice__ref_text="Hello.")
    assert _configure(node, **values) == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert "configure failed: voice.ref_audio is used only in voice_clone mode" in log, log[-2000:]
    assert "custom_voice mode" in log, log[-2000:]
    _fix_and_configure(node, checkpoints)


def _speak_in_process(node, text: str = "A short test sentence."):
    """Activate, feed one text through the node's own subscription callback, wait; the worker's statistics."""
    from std_msgs.msg import String

    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    before = node._worker.snapshot().utterances
    node._text.on_text(String(data=text))
    deadline = time.monotonic() + 120
    while node._worker.snapshot().utterances == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node._worker.wait_idle(60)
    snapshot = node._worker.snapshot()
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    return snapshot


@pytest.mark.parametrize("name,x_vector_only",
                         [("stereo_44k", False), ("long_60s", False), ("long_60s", True)])
def test_unusual_reference_audio_configures_and_speaks(node, checkpoints, audio_files, name, x_vector_only):
    """Stereo is averaged, 44.1/16 kHz resampled (as qwen-tts); a 60 s reference is 750 prompt positions of
    every utterance (ICL) but fits the default max_seq_len."""
    _set(node, sampling__max_new_tokens=4, warmup__text="")
    values = dict(model=str(checkpoints["base"]), voice__ref_audio=audio_files[name],
                  voice__ref_text="" if x_vector_only else "A reference sentence.",
                  voice__x_vector_only=x_vector_only)
    assert _configure(node, **values) == TransitionCallbackReturn.SUCCESS
    snapshot = _speak_in_process(node)
    assert snapshot.errors == 0 and snapshot.utterances >= 1
    _set(node, voice__x_vector_only=False)


def test_max_seq_len_too_small_for_the_voice_prompt_fails_configure(node, checkpoints, audio_files, capfd):
    """A 60 s reference takes 759 prompt positions (750 codec frames); max_seq_len 512 leaves no room for
    text: refused at configure (before, configure succeeded and then every utterance failed)."""
    values = dict(model=str(checkpoints["base"]), voice__ref_audio=audio_files["long_60s"],
                  voice__ref_text="A reference sentence.", max_seq_len=512)
    assert _configure(node, **values) == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert "max_seq_len=512 is too small for this voice" in log and "no room for text" in log, log[-2000:]
    _fix_and_configure(node, checkpoints)


@pytest.mark.parametrize("kind,extra",
                         [("custom_voice_0b6", {}), ("base", {"voice__ref_text": "Hello there."})])
def test_instruct_on_a_model_that_ignores_it_is_dropped_with_a_warning(node, checkpoints, audio_files, capfd,
                                                                      kind, extra):
    _set(node, sampling__max_new_tokens=4, warmup__text="")
    values = dict(model=str(checkpoints[kind]), voice__instruct="Speak very slowly.", **extra)
    if kind == "base":
        values["voice__ref_audio"] = audio_files["mono"]
    assert _configure(node, **values) == TransitionCallbackReturn.SUCCESS
    assert node._worker.model.request_fields.get("instruct") is None
    log = capfd.readouterr().err
    assert "voice.instruct ignored" in log, log[-2000:]
    assert _speak_in_process(node).errors == 0
    _set(node, voice__instruct="", voice__ref_audio="", voice__ref_text="")


@pytest.mark.parametrize("broken", ["model.safetensors", "speech_tokenizer/model.safetensors", "config.json",
                                    "vocab.json"])
def test_truncated_model_file_fails_configure_naming_the_model(node, checkpoints, tmp_path, capfd, broken):
    model_dir = tmp_path / "model"
    shutil.copytree(checkpoints["custom_voice"], model_dir)
    path = model_dir / broken
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _configure(node, model=str(model_dir)) == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert f"configure failed: cannot load model {str(model_dir)!r}" in log, log[-3000:]
    _fix_and_configure(node, checkpoints)


@pytest.mark.parametrize("model", ["https://huggingface.co/Qwen/Qwen3-TTS-12Hz-0.6B-Base", "file:///models/x"])
def test_model_url_is_refused(node, checkpoints, capfd, model):
    assert _configure(node, model=model) == TransitionCallbackReturn.FAILURE
    assert "not a URL" in capfd.readouterr().err
    _fix_and_configure(node, checkpoints)


def test_prefill_buckets_are_checked(node, checkpoints, capfd):
    """Negative sizes are refused when set (with the reason); a bucket past max_seq_len fails configure."""
    results = node.set_parameters([Parameter("prefill_buckets", value=[32, -1])])
    assert not results[0].successful and "prefill_buckets" in results[0].reason
    assert list(node.get_parameter("prefill_buckets").value) == [32, 64, 128, 256]
    values = dict(model=str(checkpoints["custom_voice"]), max_seq_len=256, prefill_buckets=[64, 512])
    assert _configure(node, **values) == TransitionCallbackReturn.FAILURE
    assert "prefill_buckets [64, 512] must be <= max_seq_len=256" in capfd.readouterr().err
    _set(node, prefill_buckets=[0])  # none: valid on any max_seq_len
    _fix_and_configure(node, checkpoints)
    _set(node, prefill_buckets=[32, 64, 128, 256])
