"""The playback.* parameters (sound out of a local audio device: playback.py, playback_sink.py); part of the
node's table (params.SPECS). All applied at configure; the defaults keep playback off."""

from __future__ import annotations

from qwen3_tts_ros.node.param_spec import Spec

PLAYBACK_SPECS: tuple[Spec, ...] = (
    Spec(
        "playback.enabled",
        False,
        "Play the audio on a local sound device (PortAudio) as well as publishing it; tts/speaking, say "
        "goals' wait_for_playback and tts/envelope then follow the device clock. Configure fails with the "
        "list of devices when the device cannot be opened.",
        "configure",
    ),
    Spec(
        "playback.device",
        "default",
        "Output device: 'default', a PortAudio device index, or a device name or part of one (ALSA: e.g. "
        "'pulse', 'hw:1,0' names as listed in the configure error).",
        "configure",
    ),
    Spec(
        "playback.start_buffer_s",
        0.1,
        "Audio buffered before an utterance starts sounding, and again after an underrun (jitter buffer); "
        "an utterance shorter than this starts once its last chunk is in.",
        "configure",
        float_range=(0.0, 10.0),
    ),
    Spec(
        "playback.latency_s",
        0.05,
        "Device latency asked of PortAudio (about one device period: what a stop cannot take back).",
        "configure",
        float_range=(0.001, 2.0),
    ),
    Spec(
        "playback.envelope_rate_hz",
        0.0,
        "Rate of tts/envelope (std_msgs/Float32, RMS loudness 0..1 for a robot face's mouth), timed to the "
        "sound with playback on, to the audio timeline otherwise. 0.0: no envelope topic.",
        "configure",
        float_range=(0.0, 1000.0),
    ),
)
