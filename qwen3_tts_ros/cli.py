"""`qwen3-tts-say`: text in, WAV out, through the engine (no ROS), printing time to first audio and real-time
factor.

    qwen3-tts-say "Hello, I am your robot." -o hello.wav
    echo "Hello." | qwen3-tts-say -o hello.wav --model /models/Qwen3-TTS-12Hz-0.6B-CustomVoice --speaker Ryan
    qwen3-tts-say --model Qwen/Qwen3-TTS-12Hz-0.6B-Base --ref-audio me.wav --ref-text "What I said." "Hi."
    qwen3-tts-say --model /models/Qwen3-TTS-12Hz-1.7B-VoiceDesign --instruct "A calm, low voice." "Hi."
    qwen3-tts-say --model /models/Qwen3-TTS-12Hz-1.7B-CustomVoice --voices voices.yaml --voice urgent "Stop!"
    llm ... | qwen3-tts-say --stream-stdin -o - | aplay -f S16_LE -r 24000 -c 1

--stream-stdin speaks standard input as it arrives (a language model's output piped in, partial lines
too): one utterance, started as soon as its first words are final, exactly as the whole text would be
spoken. `-o -` writes raw 16-bit little-endian PCM (mono, 24 kHz) to standard output instead of a WAV,
and the messages go to standard error.

Without --model it loads the same built-in tiny RANDOM demo checkpoint as the node (noise, not speech).
The audio is streamed exactly as the node streams it (first chunk of --first-chunk-frames frames, then
--chunk-frames), written as it arrives: 16-bit mono at 24 kHz, 1920 samples per 80 ms codec frame.
Imports no ROS.

Exit status: 0 written (or standard output closed by its reader); 2 bad input (arguments, text, model,
voice); 1 synthesis failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import itertools
import os
import sys
import time
import wave
from collections.abc import Iterator

from qwen3_tts_ros.quiet_import import import_engine_quietly

PROG = "qwen3-tts-say"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class BadInput(Exception):
    """A refusal of what the user gave; its message names the argument."""


def flag(name: str) -> str:
    """A voice setting's name as this CLI's flag (for the shared voice-settings messages)."""
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("text", nargs="*", help="text to speak; none or '-': read it from standard input")
    ap.add_argument(
        "-o",
        "--output",
        default="out.wav",
        help="WAV file to write (default: %(default)s); '-': raw 16-bit little-endian PCM, mono, 24 kHz, to "
        "standard output (messages then go to standard error)",
    )
    ap.add_argument(
        "--stream-stdin",
        action="store_true",
        help="speak standard input as it arrives (e.g. a language model piped in), as one utterance",
    )

    g = ap.add_argument_group("model")
    g.add_argument(
        "--model",
        default="",
        help="model directory or Hugging Face hub id (from the local hub cache unless --allow-download); "
        "default: the built-in tiny RANDOM demo checkpoint (noise)",
    )
    g.add_argument("--allow-download", action="store_true", help="download the model / an http(s) ref audio")
    g.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    g.add_argument(
        "--dtype",
        default="auto",
        help="auto (bfloat16 on CUDA, float32 on CPU), bfloat16, float16 or float32",
    )
    g.add_argument("--max-seq-len", type=int, default=2048, help="static KV-cache length (default: 2048)")
    g.add_argument("--runaway-frames-per-token", type=float,
                   help="end an utterance the model has not ended after max(--runaway-min-frames, this * its "
                        "text tokens) frames (default: the engine's RunawayGuard; 0: off, as qwen-tts)")
    g.add_argument("--runaway-min-frames", type=int,
                   help="frames every utterance may have (default: the engine's RunawayGuard)")
    g.add_argument("--no-cuda-graphs", action="store_true", help="decode eagerly on CUDA too (slower)")
    g.add_argument("--frame-path", default="auto", metavar="PATH",
                   help="how each frame runs: auto (default: the fastest that runs here, fused Triton "
                        "kernels first), or a frame path's name to force it (an unknown name is refused "
                        "with the list)")
    g.add_argument("--no-prefill-buckets", action="store_true",
                   help="no captured prefill graphs (32/64/128/256 positions) on CUDA (slower first audio)")
    g.add_argument("--no-warmup", action="store_true", help="skip the short warm-up generation")
    g.add_argument("--list-voices", action="store_true", help="print the model's mode, speakers, languages")

    g = ap.add_argument_group("voice (as the node's voice.* parameters)")
    g.add_argument(
        "--mode",
        default="",
        choices=("", "voice_clone", "custom_voice", "voice_design"),
        metavar="MODE",
        help="voice_clone, custom_voice or voice_design; default: the mode of the model "
        "(Base: voice_clone, CustomVoice: custom_voice, VoiceDesign: voice_design)",
    )
    g.add_argument("--voices", default="", metavar="FILE",
                   help="a voice file (the node's voices.file, docs/VOICES.md): speak in its --voice NAME, "
                   "or its default voice; then --language and --instruct are this text's own, as a request's")
    g.add_argument("--voice", default="", metavar="NAME", help="a voice of --voices FILE")
    g.add_argument("--language", default="", help="language name known to the model, or Auto (default)")
    g.add_argument("--speaker", default="", help="custom_voice speaker (default: the model's first)")
    g.add_argument("--instruct", default="", help="voice_design: the voice description (required); "
                   "custom_voice 1.7B: optional style instruction")
    g.add_argument("--ref-audio", default="", help="voice_clone: reference audio file")
    g.add_argument("--ref-text", default="", help="voice_clone: transcript of --ref-audio")
    g.add_argument("--x-vector-only", action="store_true", help="voice_clone: speaker embedding only")
    g.add_argument("--voice-prompt", default="", metavar="FILE",
                   help="voice_clone: a saved voice prompt (save_voice_prompt) instead of --ref-audio")

    g = ap.add_argument_group("streaming")
    g.add_argument("--first-chunk-frames", type=int, default=1, help="frames in the first chunk (default: 1)")
    g.add_argument("--chunk-frames", type=int, default=4, help="frames per later chunk (default: 4)")

    g = ap.add_argument_group(
        "sampling (qwen-tts's talker settings; unset ones come from the model's generation_config.json)"
    )
    g.add_argument("--greedy", action="store_true", help="greedy decoding (deterministic)")
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--max-new-tokens", type=int, default=None, help="most frames (80 ms each)")
    g.add_argument("--seed", type=int, default=None, help="torch seed, for repeatable sampling")
    return ap


def chosen_voice(args):
    """-> (the voice file's voice name or "", its VoiceSettings, the label of its fields in messages): a voice
    of --voices FILE (--voice NAME, else the file's default voice), else the voice flags (as the node's
    voice.* parameters). VoiceSettingsError names what is wrong."""
    from qwen3_tts_ros.engine.voice import VoiceSettings, VoiceSettingsError
    from qwen3_tts_ros.engine.voice_book import read_voice_file, voice_label

    flags = VoiceSettings.of(args)
    if not args.voices:
        if args.voice:
            raise VoiceSettingsError("--voice NAME needs --voices FILE")
        return "", flags, flag
    voice_file = read_voice_file(args.voices)
    name = args.voice or voice_file.default_voice()
    if not name:
        return "", flags, flag  # the file names no default voice: the flags' voice, as the node's voice.*
    if name not in voice_file.voices:
        known = sorted(voice_file.voices)
        raise VoiceSettingsError(f"--voice {name!r}: not in {args.voices}; its voices: {known}")
    own = VoiceSettings(language=args.language, instruct=args.instruct)
    if flags != own:
        raise VoiceSettingsError(f"--voice {name!r} has its settings in {args.voices}: of the voice flags, "
                                 "give only --language and --instruct (this text's own)")
    return name, voice_file.voices[name], voice_label(name)


def read_text(words: list[str], stdin) -> str:
    if words and words != ["-"]:
        text = " ".join(words)
    elif stdin is None or stdin.isatty():
        raise BadInput("no text: give it as arguments or on standard input")
    else:
        text = stdin.read()
    if not text.strip():
        raise BadInput("the text is empty")
    return text


def stdin_pieces(fd: int) -> Iterator[str]:
    """The text on file descriptor `fd` as it arrives: whatever a read returns (a pipe gives what was
    written, not whole lines), decoded as UTF-8 (a character cut between two reads waits for its rest;
    invalid bytes become U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        data = os.read(fd, 65536)
        text = decoder.decode(data, final=not data)
        if text:
            yield text
        if not data:
            return


def streamed_text(fd: int) -> Iterator[str]:
    """stdin_pieces, once it has more than whitespace (BadInput if it ends before): the engine is given
    a text that has begun."""
    pieces = stdin_pieces(fd)
    start = []
    for piece in pieces:
        start.append(piece)
        if piece.strip():
            return itertools.chain(start, pieces)
    raise BadInput("the text is empty")


def check_numbers(args) -> None:
    """The engine's rules (and messages) for the numbers given, before anything is loaded."""
    from qwen3_tts_ros.engine.audio.audio_stream import check_chunking
    from qwen3_tts_ros.engine.types import SamplingParams

    engine_config(args)  # the model settings
    try:
        check_chunking(args.first_chunk_frames, args.chunk_frames, "int16")
        SamplingParams.check_overrides(**sampling_kwargs(args))
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


def open_output(path: str):
    if path == "-":
        # The PCM goes to a copy of fd 1, and fd 1 itself now points at standard error: no message or
        # import banner printed by anything in this process (or a subprocess of it) lands in the audio.
        sys.stdout.flush()
        pcm = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        return pcm
    if os.path.isdir(path):
        raise BadInput(f"-o {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        return open(path, "wb")  # noqa: SIM115 - closed by the caller (wave does not close a file object)
    except OSError as exc:
        raise BadInput(f"-o {path}: cannot write: {exc.strerror or exc}") from exc


def sampling_kwargs(args) -> dict:
    kwargs = dict(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
    )
    if args.greedy:
        kwargs.update(do_sample=False, subtalker_dosample=False)
    return kwargs


def engine_config(args):
    """The model flags as the engine's EngineConfig; BadInput with the engine's message for one it refuses."""
    from qwen3_tts_ros.engine.config import EngineConfig

    try:
        return EngineConfig(
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            max_seq_len=args.max_seq_len,
            use_cuda_graphs=not args.no_cuda_graphs,
            frame_path=args.frame_path,
            prefill_buckets=() if args.no_prefill_buckets else None,  # None: the suggested ones that fit
            allow_download=args.allow_download,
            **runaway_settings(args.runaway_frames_per_token, args.runaway_min_frames),
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


def runaway_settings(frames_per_token: float | None, min_frames: int | None) -> dict:
    """EngineConfig's runaway_* from the flags: not given, the RunawayGuard's defaults; 0 frames per token,
    off."""
    from qwen3_tts_ros.engine.types import RunawayGuard

    if frames_per_token is None:
        frames_per_token = RunawayGuard.frames_per_token
    return dict(
        runaway_frames_per_token=frames_per_token or None,
        runaway_min_frames=RunawayGuard.min_frames if min_frames is None else min_frames,
    )


def load_engine(args):
    """-> the engine, through open_engine; BadInput for a model/device that cannot be used."""
    from qwen3_tts_ros.engine.config import open_engine
    from qwen3_tts_ros.engine.errors import EngineConfigError, ModelLoadError

    try:
        engine = open_engine(engine_config(args))
    except EngineConfigError as exc:
        raise BadInput(str(exc)) from exc
    except ModelLoadError as exc:
        if not isinstance(exc.__cause__, (OSError, ValueError)):  # FileNotFoundError names the file / hub id
            raise
        raise BadInput(str(exc).replace("pass allow_download=True", "use --allow-download")) from exc
    if not args.model:
        print(f"note: no --model given: the built-in tiny RANDOM demo checkpoint {engine.source} "
              "(noise, not speech)", file=sys.stderr)
    return engine


@contextlib.contextmanager
def pcm_writer(out_file, raw: bool):
    """-> write(int16 samples): into a WAV, or raw to `out_file` (flushed per chunk, for a player)."""
    if raw:

        def write(pcm) -> None:
            out_file.write(pcm.astype("<i2", copy=False).tobytes())
            out_file.flush()

        yield write
        return
    from qwen3_tts_ros.engine.types import SAMPLE_RATE

    with wave.open(out_file, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        yield lambda pcm: wav.writeframes(pcm.astype("<i2", copy=False).tobytes())


def speak(args, text: str | None, out_file, stdin) -> int:
    """text: the whole text, or None: stream it from `stdin` (--stream-stdin)."""
    import torch

    from qwen3_tts_ros.engine.stats import Summary
    from qwen3_tts_ros.engine.types import SAMPLE_RATE, SpeechRequest
    from qwen3_tts_ros.engine.voice import VoiceSettingsError, check_ref_audio, voice_request_fields

    raw = args.output == "-"
    output_name = "standard output" if raw else args.output

    def info(line: str) -> None:
        print(line, file=sys.stderr if raw else sys.stdout, flush=True)

    try:
        name, voice, label = chosen_voice(args)
        check_ref_audio(voice, allow_download=args.allow_download, label=label)
    except VoiceSettingsError as exc:
        raise BadInput(str(exc)) from exc
    t0 = time.perf_counter()
    engine = load_engine(args)
    dtype_name = str(engine.dtype).removeprefix("torch.")
    info(f"model {engine.source} ({engine.tts_model_type}, {engine.tts_model_size}) on {engine.device} "
         f"{dtype_name}, loaded in {time.perf_counter() - t0:.1f} s")
    if args.list_voices:
        info(f"mode: {engine.mode}")
        info(f"speakers: {', '.join(engine.get_supported_speakers() or []) or '-'}")
        info(f"languages: {', '.join(engine.get_supported_languages() or []) or '-'}")
        return 0
    try:
        fields = voice_request_fields(engine, voice, label=label)
        if name:  # a voice of the file, with this text's own language and instruct (a request's rule)
            fields = engine.voices.override(fields, args.language, args.instruct)
        sampling = engine.sampling_params(**sampling_kwargs(args))
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    voice_desc = ", ".join(f"{k} {v}" for k, v in fields.items() if k != "voice_prompt" and v)
    info(f"voice: {voice_desc}")

    if not args.no_warmup:
        t = time.perf_counter()
        engine.warmup()
        graphs = engine.device.type == "cuda" and not args.no_cuda_graphs
        info(f"warm-up{' and CUDA-graph capture' if graphs else ''} in {time.perf_counter() - t:.2f} s")
    if args.seed is not None:
        torch.manual_seed(args.seed)
    if text is None:
        info("reading the text from standard input as it arrives")
        request = SpeechRequest(text=streamed_text(stdin.fileno()), sampling=sampling, **fields)
    else:
        request = SpeechRequest(text=text, sampling=sampling, **fields)

    with pcm_writer(out_file, raw) as write:
        try:
            stream = engine.stream(
                request,
                first_chunk_frames=args.first_chunk_frames,
                chunk_frames=args.chunk_frames,
                pcm_format="int16",
            )
        except ValueError as exc:  # e.g. max_seq_len leaves no room for the text
            raise BadInput(str(exc)) from exc
        chunks = samples = 0
        try:
            for chunk in stream:
                write(chunk.pcm)
                chunks += 1
                samples += chunk.pcm.size
        except KeyboardInterrupt:
            stream.cancel()
            print(f"interrupted: {samples} samples written to {output_name}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # the reader had what it wanted (`| head -c`) or went away: its choice
            stream.cancel()
            print(f"{output_name} was closed by its reader after {samples} samples: stopped", file=sys.stderr)
            return 0
    stats = stream.stats
    frame_ms = list(stats.frame_ms)
    info(f"wrote {output_name}: {samples / SAMPLE_RATE:.2f} s of audio, {stats.frames} frames, "
         f"{samples} samples at {SAMPLE_RATE} Hz, {chunks} chunks, stopped by {stats.stopped_by}")
    info(f"time to first audio: {stats.time_to_first_audio_ms:.1f} ms (request -> first "
         f"{args.first_chunk_frames}-frame chunk decoded; prefill {stats.prefill_ms:.1f} ms)")
    if text is None:
        info(f"first text -> first audio: {stats.time_to_first_audio_ms - 1000 * stats.first_text_s:.1f} ms; "
             f"text: {stats.text_length} characters, {stats.text_tokens} tokens; waited for text "
             f"{stats.text_stalls} times after the first audio, {stats.text_wait_ms:.1f} ms in all")
    info(f"real-time factor: {stats.real_time_factor:.2f} (audio s / wall s, >1 is faster than real time; "
         f"{stats.audio_seconds:.2f} s of audio in {stats.total_s:.2f} s)")
    ms = Summary.of(frame_ms)
    info(f"ms/frame: mean {ms.mean:.1f}, p50 {ms.p50:.1f}, p95 {ms.p95:.1f}, max {ms.max:.1f} "
         f"(generation; decode {stats.decode_ms_total:.1f} ms in all)")
    return 0


def main(argv: list[str] | None = None, stdin=None) -> int:
    args = build_parser().parse_args(argv)
    stdin = sys.stdin if stdin is None else stdin
    out_file = None
    try:
        # qwen-tts's import banners (flash-attn, SoX) are not this command's concern, as in the node.
        printed = import_engine_quietly().printed
        if printed and os.environ.get("QWEN3_TTS_DEBUG"):
            print(f"{PROG}: the import of qwen-tts printed: {printed}", file=sys.stderr)
        check_numbers(args)
        if args.stream_stdin and args.text and args.text != ["-"]:
            raise BadInput("--stream-stdin reads the text from standard input: give no text arguments")
        if args.list_voices:
            text = ""
        else:
            text = None if args.stream_stdin else read_text(args.text, stdin)
            out_file = open_output(args.output)
        rc = speak(args, text, out_file, stdin)
    except BadInput as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        rc = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        rc = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line for the user; the traceback with QWEN3_TTS_DEBUG=1
        if os.environ.get("QWEN3_TTS_DEBUG"):
            raise
        print(f"{PROG}: synthesis failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        rc = EXIT_FAILED
    finally:
        if out_file is not None:
            with contextlib.suppress(BrokenPipeError):  # what a closed pipe kept of the last chunk is lost
                out_file.close()
    if out_file is not None and args.output != "-" and rc not in (0, EXIT_INTERRUPTED):
        os.unlink(args.output)  # no half-written WAV behind a failure
    return rc


if __name__ == "__main__":
    sys.exit(main())
