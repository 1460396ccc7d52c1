"""Voice prompts: encoded like qwen-tts, from files or arrays (stereo, other rates), saved/loaded, reused."""

import base64

import numpy as np
import pytest
import soundfile as sf
import torch

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs, VoicePrompt, load_voice_prompt, save_voice_prompt
from qwen3_tts_ros.engine.voice_prompt import load_reference_audio

pytestmark = pytest.mark.usefixtures("torch_single_thread")
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=8)
REF_TEXT = "A reference sentence."


@pytest.fixture(scope="module")
def engine(tiny_base_tts):
    return Qwen3TTSCudaGraphs(tiny_base_tts, max_seq_len=256)


def assert_same_prompt(ours: VoicePrompt, item):
    assert ours.icl_mode == item.icl_mode and ours.x_vector_only_mode == item.x_vector_only_mode
    assert ours.ref_text == item.ref_text
    if item.ref_code is None:
        assert ours.ref_code is None
    else:
        assert torch.equal(torch.as_tensor(ours.ref_code), item.ref_code)
    assert torch.equal(torch.as_tensor(ours.spk_embedding), item.ref_spk_embedding)


@pytest.mark.parametrize("x_vector_only_mode", [False, True])
def test_prompt_equals_qwen_tts(engine, tiny_base_tts, reference_audio, x_vector_only_mode):
    ours = engine.create_voice_prompt(reference_audio, REF_TEXT, x_vector_only_mode)
    (item,) = tiny_base_tts.create_voice_clone_prompt(reference_audio, REF_TEXT, x_vector_only_mode)
    assert_same_prompt(ours, item)
    assert (ours.ref_code is None) == x_vector_only_mode
    if not x_vector_only_mode:
        assert ours.ref_code.shape == (13, 16)  # 1 s at 24 kHz: ceil(24000 / 1920) frames


def test_other_sample_rate_resampled_as_qwen_tts(engine, tiny_base_tts, reference_audio):
    wav, _ = reference_audio
    wav16k = wav[::3].copy()  # treat as 8 kHz audio: qwen-tts resamples with librosa
    ours = engine.create_voice_prompt((wav16k, 8000), REF_TEXT)
    (item,) = tiny_base_tts.create_voice_clone_prompt((wav16k, 8000), REF_TEXT)
    assert_same_prompt(ours, item)


def test_file_and_stereo_inputs(engine, reference_audio, tmp_path):
    wav, sr = reference_audio
    from_array = engine.create_voice_prompt(reference_audio, REF_TEXT)
    mono_path = tmp_path / "ref.wav"
    sf.write(mono_path, wav, sr, subtype="FLOAT")
    assert_same_prompt(engine.create_voice_prompt(str(mono_path), REF_TEXT), _as_item(from_array))
    # stereo with the same signal in both channels downmixes to the same mono signal
    stereo = np.stack([wav, wav], axis=1)
    stereo_path = tmp_path / "stereo.wav"
    sf.write(stereo_path, stereo, sr, subtype="FLOAT")
    assert_same_prompt(engine.create_voice_prompt(str(stereo_path), REF_TEXT), _as_item(from_array))
    assert_same_prompt(engine.create_voice_prompt((stereo, sr), REF_TEXT), _as_item(from_array))
    # a different second channel really is averaged in
    mixed = load_reference_audio((np.stack([wav, np.zeros_like(wav)], axis=1), sr))[0]
    np.testing.assert_allclose(mixed, wav / 2, atol=1e-7)
    channels_first = load_reference_audio((np.stack([wav, np.zeros_like(wav)]), sr))[0]
    np.testing.assert_allclose(channels_first, wav / 2, atol=1e-7)


def _as_item(prompt: VoicePrompt):
    from qwen3_tts_ros.engine.voice_prompt import to_prompt_item

    return to_prompt_item(prompt)


def test_save_load_round_trip_and_reuse(engine, reference_audio, tmp_path):
    prompt = engine.create_voice_prompt(reference_audio, REF_TEXT)
    path = tmp_path / "voice.safetensors"
    save_voice_prompt(prompt, path)
    loaded = load_voice_prompt(path)
    assert_same_prompt(loaded, _as_item(prompt))
    assert loaded.ref_code.dtype == torch.long
    # reuse gives the same audio as encoding the reference again
    direct, _ = engine.generate_voice_clone(
        "Reuse me.", ref_audio=reference_audio, ref_text=REF_TEXT, **GREEDY
    )
    reused, _ = engine.generate_voice_clone("Reuse me.", voice_clone_prompt=loaded, **GREEDY)
    np.testing.assert_array_equal(direct[0], reused[0])
    # x-vector-only prompts (no codes) round-trip too
    xvec = engine.create_voice_prompt(reference_audio, x_vector_only_mode=True)
    Qwen3TTSCudaGraphs.save_voice_prompt(xvec, tmp_path / "xvec.safetensors")
    assert_same_prompt(Qwen3TTSCudaGraphs.load_voice_prompt(tmp_path / "xvec.safetensors"), _as_item(xvec))


def test_bad_prompt_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_voice_prompt(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="voice prompt"):
        load_voice_prompt(garbage)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="voice prompt"):
        load_voice_prompt(other)


def test_bad_reference_audio(engine, tmp_path, reference_audio):
    with pytest.raises(FileNotFoundError, match="not found"):
        engine.create_voice_prompt(str(tmp_path / "missing.wav"), REF_TEXT)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        engine.create_voice_prompt(str(empty), REF_TEXT)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(ValueError, match="cannot decode"):
        engine.create_voice_prompt(str(corrupt), REF_TEXT)
    with pytest.raises(ValueError, match="empty"):
        engine.create_voice_prompt((np.zeros(0, np.float32), 24000), REF_TEXT)
    with pytest.raises(ValueError, match="NaN"):
        engine.create_voice_prompt((np.full(100, np.nan, np.float32), 24000), REF_TEXT)
    with pytest.raises(ValueError, match="tuple"):
        engine.create_voice_prompt(reference_audio[0], REF_TEXT)
    with pytest.raises(ValueError, match="ref_text"):
        engine.create_voice_prompt(reference_audio)  # ICL mode needs the transcript


def test_url_and_base64_refused_without_allow_download(engine, reference_audio, tmp_path):
    with pytest.raises(ValueError, match="allow_download"):
        engine.create_voice_prompt("https://example.com/voice.wav", REF_TEXT)
    path = tmp_path / "ref.wav"
    sf.write(path, reference_audio[0], 24000, subtype="FLOAT")
    encoded = "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()
    with pytest.raises(ValueError, match="allow_download"):
        engine.create_voice_prompt(encoded, REF_TEXT)
    # with allow_download the base64 form (no network) decodes to the same audio as the file
    audio, sr = load_reference_audio(encoded, allow_download=True)
    assert sr == 24000
    np.testing.assert_array_equal(audio, load_reference_audio(str(path))[0])
