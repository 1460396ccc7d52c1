"""output.gain (a real node process, real DDS, greedy): the audio on /tts/audio is the engine's float audio
times the gain, converted to int16 by the one conversion (float_to_int16), so exactly equal to that product
computed here in-process (the same float32 operations on the same samples); unity gain is the engine's int16
output unchanged (test_node_stream.py)."""
import numpy as np
import pytest

pytestmark = pytest.mark.ros

FRAMES = 16
GAIN = 0.25


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, engine, node_session, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"voice.speaker": engine.get_supported_speakers()[0], "output.gain": GAIN,
                        "sampling.max_new_tokens": FRAMES})
    with node_session(tmp_path_factory.mktemp("gain_node"), overrides) as running:
        yield running


def test_the_gain_scales_every_sample_of_the_published_audio(node, engine):
    from qwen3_tts_ros.engine.audio.pcm import float_to_int16
    from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest

    text = "The robot arm is ready to pick up the red cup."
    _, groups, _ = node.speak(text)
    (received,) = groups.values()
    got = np.frombuffer(b"".join(bytes(r.msg.audio.data) for r in received), dtype="<i2")

    request = SpeechRequest(text=text, mode="custom_voice", language="Auto",
                            speaker=engine.get_supported_speakers()[0],
                            sampling=SamplingParams(do_sample=False, subtalker_dosample=False,
                                                    max_new_tokens=FRAMES))
    chunks = list(engine.stream(request, first_chunk_frames=1, chunk_frames=4, pcm_format="float32"))
    audio = np.concatenate([c.pcm for c in chunks])
    np.testing.assert_array_equal(got, float_to_int16(audio * np.float32(GAIN)))
    assert np.abs(got).max() <= round(GAIN * 32767)
    assert np.abs(float_to_int16(audio)).max() > round(GAIN * 32767), "the model's level is above the gain's"
