"""`qwen3-tts-say`: text in, WAV (or raw PCM) out, through the engine (no ROS), printing time to first audio
and real-time factor. Usage, flags and exit statuses: HELP in cli_args.py (`qwen3-tts-say --help`); this
module reads the text, loads the engine, streams the audio into the output and reports.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import sys
import time
import wave
from collections.abc import Iterator

from qwen3_tts_ros.cli_args import (
    PROG,
    BadInput,
    build_parser,
    check_numbers,
    chosen_voice,
    engine_config,
    sampling_kwargs,
)
from qwen3_tts_ros.quiet_import import import_engine_quietly

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


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
