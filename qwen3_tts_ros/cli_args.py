"""`qwen3-tts-say`'s arguments: the parser (its --help text is HELP) and the flags as the engine's
EngineConfig, SamplingParams overrides and the chosen voice, refused with BadInput naming the flag."""

from __future__ import annotations

import argparse

PROG = "qwen3-tts-say"
HELP = """\
`qwen3-tts-say`: text in, WAV out, through the engine (no ROS), printing time to first audio and real-time
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


class BadInput(Exception):
    """A refusal of what the user gave; its message names the argument."""


def flag(name: str) -> str:
    """A voice setting's name as this CLI's flag (for the shared voice-settings messages)."""
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
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
