"""Greedy decoding: our FrameGenerator produces qwen-tts's codes token for token (float32, CPU).

qwen-tts's codes are taken from its own wrapper path (`generate_custom_voice` / `generate_voice_design` /
`generate_voice_clone`) by recording what `model.generate` returns; ours come from build_prefill +
FrameGenerator with the same settings. The default repetition penalty (1.05) is active.
"""

import pytest
import torch

from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest, StreamStats, VoicePrompt

MAX_NEW_TOKENS = 32
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=MAX_NEW_TOKENS)


def qwen_tts_codes(tts, call):
    """Run a wrapper call; return the (T, 16) codes qwen-tts's model.generate produced."""
    original = tts.model.generate
    recorded = []

    def recording_generate(*args, **kwargs):
        out = original(*args, **kwargs)
        recorded.append(out[0][0])
        return out

    tts.model.generate = recording_generate
    try:
        call()
    finally:
        del tts.model.generate
    return recorded[0]


def our_codes(tts, request, max_seq_len=512):
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=max_seq_len))
    stats = StreamStats()
    frames = list(
        generator.generate(build_prefill(tts.model, tts.processor, request), request.sampling, stats=stats)
    )
    assert stats.frames == len(frames)
    return (torch.stack(frames) if frames else torch.zeros(0, 16, dtype=torch.long)), stats


def assert_same_codes(ours, stats, theirs):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert torch.equal(ours, theirs)
    assert stats.stopped_by == ("max_new_tokens" if len(theirs) == MAX_NEW_TOKENS - 1 else "eos")


CUSTOM_VOICE_CASES = [
    # text, speaker, language, instruct, non_streaming_mode
    ("Hello world, this is a test.", "vivian", "english", None, None),  # ends by EOS (8 frames)
    ("Good morning, how are you today?", "vivian", "english", None, True),
    ("Short one.", "ryan", "Auto", "Speak with excitement.", False),
    ("你好，今天天气很好。", "eric", "chinese", None, None),  # sichuan dialect id; ends by EOS
    ("Dialect with auto language.", "dylan", "Auto", "Slowly.", True),
    ("Dialect speaker but English.", "eric", "english", None, False),
]


@pytest.mark.parametrize("text,speaker,language,instruct,non_streaming_mode", CUSTOM_VOICE_CASES)
def test_custom_voice(tiny_custom_voice_tts, text, speaker, language, instruct, non_streaming_mode):
    tts = tiny_custom_voice_tts
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    theirs = qwen_tts_codes(
        tts,
        lambda: tts.generate_custom_voice(
            text, speaker=speaker, language=language, instruct=instruct, **kw, **GREEDY
        ),
    )
    request = SpeechRequest(
        text=text,
        mode="custom_voice",
        language=language,
        speaker=speaker,
        instruct=instruct,
        non_streaming_mode=non_streaming_mode,
        sampling=SamplingParams(**GREEDY),
    )
    assert_same_codes(*our_codes(tts, request), theirs)


@pytest.mark.parametrize(
    "text,language,non_streaming_mode",
    [
        ("Hello there, voice design.", "english", None),
        ("Another sentence to design.", "Auto", False),
    ],
)
def test_voice_design(tiny_voice_design_tts, text, language, non_streaming_mode):
    tts = tiny_voice_design_tts
    instruct = "A warm, low female voice."
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    theirs = qwen_tts_codes(
        tts, lambda: tts.generate_voice_design(text, instruct=instruct, language=language, **kw, **GREEDY)
    )
    request = SpeechRequest(
        text=text,
        mode="voice_design",
        language=language,
        instruct=instruct,
        non_streaming_mode=non_streaming_mode,
        sampling=SamplingParams(**GREEDY),
    )
    assert_same_codes(*our_codes(tts, request), theirs)


@pytest.mark.parametrize(
    "text,language,x_vector_only,non_streaming_mode",
    [
        ("Clone this voice, please.", "english", False, None),
        ("In-context cloning, text all at once.", "Auto", False, True),
        ("X-vector only cloning.", "Auto", True, None),
        ("X-vector only, non streaming.", "english", True, True),
    ],
)
def test_voice_clone(tiny_base_tts, reference_audio, text, language, x_vector_only, non_streaming_mode):
    tts = tiny_base_tts
    items = tts.create_voice_clone_prompt(
        reference_audio,
        ref_text=None if x_vector_only else "Reference words.",
        x_vector_only_mode=x_vector_only,
    )
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    theirs = qwen_tts_codes(
        tts,
        lambda: tts.generate_voice_clone(text, language=language, voice_clone_prompt=items, **kw, **GREEDY),
    )
    it = items[0]
    prompt = VoicePrompt(
        ref_code=it.ref_code,
        spk_embedding=it.ref_spk_embedding,
        x_vector_only_mode=it.x_vector_only_mode,
        icl_mode=it.icl_mode,
        ref_text=it.ref_text,
    )
    request = SpeechRequest(
        text=text,
        mode="voice_clone",
        language=language,
        voice_prompt=prompt,
        non_streaming_mode=non_streaming_mode,
        sampling=SamplingParams(**GREEDY),
    )
    assert_same_codes(*our_codes(tts, request), theirs)
