"""`qwen3-tts-say` (qwen3_tts_ros/cli.py) run as a user runs it: a subprocess, text in, WAV out.

On tiny random checkpoints (CPU). Checks the WAV (24 kHz mono 16-bit, exactly frames * 1920 samples, the
same samples as the engine streams in-process with the same settings), the printed figures, and that bad
input exits with status 2, a one-line message naming the argument, and no WAV left behind.
"""

import os
import re
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME, SamplingParams, SpeechRequest
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = "Hello robot. How are you today?"
MAX_FRAMES = 12


def cli_env(env=None):
    environ = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environ.update(env or {})
    return environ


def run_cli(*args, stdin_text=None, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "qwen3_tts_ros.cli", *args],
        input=stdin_text if stdin_text is not None else "",
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
    )


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def figure(pattern, stdout):
    match = re.search(pattern, stdout)
    assert match, f"{pattern!r} not in the output:\n{stdout}"
    return [float(g) for g in match.groups()]


def test_text_from_stdin_to_wav_with_figures_and_same_audio_as_the_engine(tiny_custom_voice_dir, tmp_path):
    out = tmp_path / "sub" / "hello.wav"  # the parent directory is created
    args = ["--model", str(tiny_custom_voice_dir), "-o", str(out), "--speaker", "ryan",
            "--language", "english", "--greedy", "--max-new-tokens", str(MAX_FRAMES),
            "--first-chunk-frames", "1", "--chunk-frames", "3", "--no-warmup"]
    proc = run_cli(*args, stdin_text=TEXT + "\n")
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    samples = read_wav(out)
    frames, n_samples, chunks = figure(r"(\d+) frames, (\d+) samples at 24000 Hz, (\d+) chunks", proc.stdout)
    assert 1 <= frames <= MAX_FRAMES
    assert samples.size == n_samples == frames * SAMPLES_PER_FRAME
    # 1-frame first chunk, 3-frame chunks, and exactly one final chunk (holding the rest, maybe empty).
    assert chunks == 1 + (frames - 1) // 3 + 1
    ttfa_ms, prefill_ms = figure(r"time to first audio: ([\d.]+) ms .*prefill ([\d.]+) ms", proc.stdout)
    assert 0 < prefill_ms < ttfa_ms
    rtf, audio_s, wall_s = figure(r"real-time factor: ([\d.]+) .*; ([\d.]+) s of audio in ([\d.]+) s",
                                  proc.stdout)
    assert audio_s == pytest.approx(frames * 0.08, abs=0.01)
    # All three are printed with 2 decimals: the ratio of the printed figures bounds the printed RTF.
    low, high = (audio_s - 0.005) / (wall_s + 0.005), (audio_s + 0.005) / max(wall_s - 0.005, 1e-3)
    assert low - 0.005 <= rtf <= high + 0.005
    mean_ms, p50_ms, p95_ms, max_ms = figure(
        r"ms/frame: mean ([\d.]+), p50 ([\d.]+), p95 ([\d.]+), max ([\d.]+)", proc.stdout)
    assert 0 < p50_ms <= p95_ms <= max_ms and mean_ms <= max_ms
    assert "speaker ryan" in proc.stdout

    # The same request streamed in-process by the engine gives the same samples (greedy, same chunking).
    engine = Qwen3TTSCudaGraphs.from_pretrained(str(tiny_custom_voice_dir), device="cpu", dtype=torch.float32)
    sampling = SamplingParams.merged(
        engine.generate_defaults, do_sample=False, subtalker_dosample=False, max_new_tokens=MAX_FRAMES)
    request = SpeechRequest(text=TEXT + "\n", mode="custom_voice", language="english", speaker="ryan",
                            sampling=sampling)
    ours = np.concatenate([c.pcm for c in engine.stream(request, first_chunk_frames=1, chunk_frames=3)])
    assert ours.size == samples.size
    assert np.abs(ours.astype(np.int32) - samples).max() <= 2  # float32 decode; thread counts may differ


def test_default_model_is_the_demo_checkpoint_and_text_comes_from_arguments(tmp_path):
    out = tmp_path / "demo.wav"
    proc = run_cli("Hi", "there.", "-o", str(out), "--max-new-tokens", "3", "--no-warmup", "--seed", "0",
                   env={"QWEN3_TTS_ROS_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    assert "tiny RANDOM demo checkpoint" in proc.stderr
    assert (tmp_path / "home" / "demo" / "tiny_random_custom_voice" / "config.json").is_file()
    (frames,) = figure(r"(\d+) frames,", proc.stdout)
    assert read_wav(out).size == frames * SAMPLES_PER_FRAME > 0
    # qwen-tts's import banners (flash-attn, SoX) are caught, as in the node (quiet_import.py).
    for banner in ("flash-attn", "SoX", "sox: not found", "********"):
        assert banner not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


BAD_INPUT = [
    ([], "   \n", "the text is empty"),
    (["x", "--chunk-frames", "0"], None, "chunk_frames must be an integer >= 1, got 0"),
    (["x", "--top-p", "1.5"], None, "top_p must be a number in the range [0, 1], got 1.5"),
    (["x", "--dtype", "float8"], None, "dtype must be 'auto' or one of"),
    (["x", "--device", "tpu"], None, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    (["x", "--model", "/nonexistent/model"], None, "model directory not found: /nonexistent/model"),
    (["x", "--model", "Org/NotCached-Model"], None, "not in the Hugging Face cache"),
    (["x", "--ref-audio", "/nonexistent/ref.wav"], None, "--ref-audio not found: /nonexistent/ref.wav"),
    (["x", "--ref-audio", "https://example.com/a.wav"], None, "set --allow-download or give a local file"),
    (["x", "--mode", "clone"], None, "invalid choice"),  # argparse's own refusal, also status 2
    (["x", "--stream-stdin"], None, "--stream-stdin reads the text from standard input: give no text"),
]


@pytest.mark.parametrize("args,stdin_text,message", BAD_INPUT, ids=[m for _, _, m in BAD_INPUT])
def test_bad_input_exits_2_with_a_message_and_no_wav(tmp_path, args, stdin_text, message):
    out = tmp_path / "never.wav"
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = run_cli(*args, "-o", str(out), stdin_text=stdin_text, env=env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cuda_device_without_cuda_exits_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli("x", "-o", str(tmp_path / "never.wav"), "--device", "cuda")
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr, proc.stderr


def test_voice_the_model_does_not_have_exits_2_naming_the_flag(tiny_custom_voice_dir, tmp_path):
    out = tmp_path / "never.wav"
    proc = run_cli("x", "-o", str(out), "--model", str(tiny_custom_voice_dir), "--speaker", "nobody")
    assert proc.returncode == 2, proc.stderr
    assert "--speaker 'nobody' not supported by this model; supported: [" in proc.stderr
    assert not out.exists()
    proc = run_cli("-o", str(out), "--model", str(tiny_custom_voice_dir), "--list-voices")
    assert proc.returncode == 0, proc.stderr
    assert "mode: custom_voice" in proc.stdout and "ryan" in proc.stdout and "english" in proc.stdout
    assert not out.exists()


def test_a_voice_flag_the_models_mode_cannot_use_exits_2(tiny_custom_voice_dir, tmp_path):
    """--ref-audio on a CustomVoice model: refused like --mode voice_clone on it (before: exit 0, the
    reference silently unused)."""
    ref = tmp_path / "hello.wav"
    with wave.open(str(ref), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(np.zeros(24000, dtype="<i2").tobytes())
    out = tmp_path / "never.wav"
    proc = run_cli("Hi.", "-o", str(out), "--model", str(tiny_custom_voice_dir), "--ref-audio", str(ref))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1] == (
        "qwen3-tts-say: error: --ref-audio is used only in voice_clone mode; this model's voice is in "
        "custom_voice mode (unset --ref-audio, or load a base model)"), proc.stderr
    assert not out.exists()


def engine_stream_samples(model_dir, text, **request):
    """int16 samples of `text` streamed in-process as the CLI below streams it (greedy, same chunking)."""
    engine = Qwen3TTSCudaGraphs.from_pretrained(str(model_dir), device="cpu", dtype=torch.float32)
    sampling = SamplingParams.merged(
        engine.generate_defaults, do_sample=False, subtalker_dosample=False, max_new_tokens=2 * MAX_FRAMES)
    request = SpeechRequest(text=text, mode="custom_voice", language="english", speaker="ryan",
                            sampling=sampling, **request)
    return np.concatenate([c.pcm for c in engine.stream(request, first_chunk_frames=1, chunk_frames=3)])


def test_stream_stdin_speaks_while_the_text_is_written_raw_pcm_to_stdout(tiny_custom_voice_dir, tmp_path):
    """--stream-stdin -o -: a pipe whose writer sends the rest of the text only once audio has come out
    (so the first words were spoken while the text was unfinished), raw PCM on stdout, the figures on
    stderr, and the audio of the whole text given whole in the streaming-text layout."""
    first, rest = "Hello wor", "ld, and the rest of it.\n"
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qwen3_tts_ros.cli", "--stream-stdin", "-o", "-", "--model",
             str(tiny_custom_voice_dir), "--speaker", "ryan", "--language", "english", "--greedy",
             "--max-new-tokens", str(2 * MAX_FRAMES), "--first-chunk-frames", "1", "--chunk-frames", "3",
             "--no-warmup"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=cli_env(),
        )  # fmt: skip
    pcm, first_audio = bytearray(), threading.Event()

    def read_stdout():
        while data := proc.stdout.read1(65536):
            pcm.extend(data)
            first_audio.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        proc.stdin.write(first.encode())
        proc.stdin.flush()
        assert first_audio.wait(EVENT_TIMEOUT_S), (
            f"no audio within {EVENT_TIMEOUT_S:.0f} s of the first words\n{errors.read_text()}"
        )
        assert proc.poll() is None, "the CLI ended before its text did"
        proc.stdin.write(rest.encode())
        proc.stdin.close()
        assert proc.wait(EVENT_TIMEOUT_S) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(EVENT_TIMEOUT_S)
    log = errors.read_text()
    print(log)
    frames, n_samples = figure(r"wrote standard output: .*?(\d+) frames, (\d+) samples", log)
    assert len(pcm) == 2 * n_samples == 2 * frames * SAMPLES_PER_FRAME  # nothing but PCM on stdout
    (first_text_ms,) = figure(r"first text -> first audio: ([\d.]+) ms", log)
    assert first_text_ms > 0
    characters, tokens, _stalls = figure(
        r"text: (\d+) characters, (\d+) tokens; waited for text (\d+) times", log)
    assert characters == len(first + rest) and tokens == len((first + rest).encode())  # byte tokenizer

    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    whole = engine_stream_samples(tiny_custom_voice_dir, first + rest, non_streaming_mode=False)
    assert whole.size == samples.size
    # The same codes; float32 decodes grouped differently (a chunk of the CLI's also ends where it waited
    # for text) and thread counts may differ: float32 rounding, at most a step of the int16 rounding.
    assert np.abs(whole.astype(np.int32) - samples).max() <= 2


def test_a_reader_that_closes_the_pipe_early_ends_it_with_status_0(tiny_custom_voice_dir, tmp_path):
    """`-o - | head -c 100`: the reader closing standard output is its choice, not a failure (before: exit 1).
    The rest of the text is written only after the pipe was closed, so audio is written into it after that."""
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qwen3_tts_ros.cli", "--stream-stdin", "-o", "-", "--model",
             str(tiny_custom_voice_dir), "--speaker", "ryan", "--language", "english", "--greedy",
             "--max-new-tokens", str(2 * MAX_FRAMES), "--no-warmup"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=cli_env(),
        )  # fmt: skip
    try:
        proc.stdin.write(b"Hello wor")
        proc.stdin.flush()
        assert len(proc.stdout.read(100)) == 100, errors.read_text()
        proc.stdout.close()
        proc.stdin.write(b"ld, and the rest of it.\n")
        proc.stdin.close()
        assert proc.wait(EVENT_TIMEOUT_S) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    log = errors.read_text()
    assert re.search(r"standard output was closed by its reader after \d+ samples: stopped", log), log
    assert "Traceback" not in log and "failed" not in log


def test_stream_stdin_without_text_exits_2(tiny_custom_voice_dir, tmp_path):
    out = tmp_path / "never.wav"
    proc = run_cli("--stream-stdin", "-o", str(out), "--model", str(tiny_custom_voice_dir), "--no-warmup",
                   stdin_text="  \n\t")
    assert proc.returncode == 2, proc.stderr
    assert "the text is empty" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_runaway_guard_flags_reach_the_engine_config():
    """On by default with the engine's RunawayGuard values; 0 frames per token turns it off."""
    from qwen3_tts_ros.cli_args import build_parser, engine_config
    from qwen3_tts_ros.engine.types import RunawayGuard

    assert engine_config(build_parser().parse_args(["Hi."])).runaway() == RunawayGuard()
    def config(*flags):
        return engine_config(build_parser().parse_args([*flags, "Hi."]))

    tuned = config("--runaway-frames-per-token", "3", "--runaway-min-frames", "20")
    assert tuned.runaway() == RunawayGuard(3.0, 20)
    assert config("--runaway-frames-per-token", "0").runaway() is None


def test_voices_file_and_voice_name_speak_as_the_same_voice_given_by_flags(tiny_custom_voice_dir, tmp_path):
    """--voices FILE --voice NAME (the node's voice file) gives the WAV of the same voice given by flags: the
    same float32 operations on the same prompt in two processes, so equal samples (bound 0)."""
    voices = tmp_path / "voices.yaml"
    voices.write_text("voices:\n  calm: {speaker: ryan, language: english}\n  other: {speaker: vivian}\n")
    common = ["--model", str(tiny_custom_voice_dir), "--greedy", "--max-new-tokens", str(MAX_FRAMES),
              "--no-warmup", "hello there"]
    by_name, by_flags = tmp_path / "by_name.wav", tmp_path / "by_flags.wav"
    proc = run_cli(*common, "-o", str(by_name), "--voices", str(voices), "--voice", "calm")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(*common, "-o", str(by_flags), "--speaker", "ryan", "--language", "english")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_wav(by_name), read_wav(by_flags))
    refusals = {("--voice", "loud"): "--voice 'loud': not in",
                ("--voice", "calm", "--speaker", "vivian"): "give only --language and --instruct",
                ("--voice", "calm", "--language", "klingon"): "language 'klingon' not supported"}
    for extra, words in refusals.items():
        proc = run_cli(*common, "-o", str(tmp_path / "never.wav"), "--voices", str(voices), *extra)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    proc = run_cli(*common, "-o", str(tmp_path / "never.wav"), "--voice", "calm")
    assert proc.returncode == 2 and "--voice NAME needs --voices FILE" in proc.stderr, proc.stderr
