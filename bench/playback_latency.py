"""First text -> first sound, and stop -> silence, of the node with playback.enabled, measured at the speaker:
the node process plays into a private PulseAudio null sink whose monitor is recorded with parec
(qwen3_tts_ros/testing/sound_server.py), so a figure is the time until the samples were actually rendered.

    python bench/playback_latency.py --runs 5                      # the tiny random checkpoint on the CPU
    python bench/playback_latency.py --model /models/... --device cuda --runs 20

Per run: a text is published on tts/text (time taken just before publishing) and the recording's first
non-silent sample dated (MonitorRecorder.time_of: late by at most one 10 ms parec block); once 0.3 s has
sounded, ~/stop is called at a moment the newest 10 ms recorded are sound (not an underrun's gap), and the
recording's last non-silent sample is dated against the time the call was
sent. Printed: each run and the median / max of both, with the node's parameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import numpy as np

from qwen3_tts_ros.testing.sound_server import SoundServer

RATE = 24000
TEXT = "One two three four five six seven eight nine ten eleven twelve."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model directory; '' writes the tiny random checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--start-buffer-s", type=float, default=0.1)
    ap.add_argument("--latency-s", type=float, default=0.05)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    args = ap.parse_args()

    import rclpy  # noqa: F401 - fail early without ROS
    from qwen3_tts_ros.node.client import NodeProcess, TtsClient

    model = args.model
    tmp = tempfile.mkdtemp(prefix="playback_bench-")
    if not model:
        from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

        model = str(write_tiny_checkpoint(__import__("pathlib").Path(tmp) / "tiny", "custom_voice", seed=1))
    server = SoundServer(RATE)
    server.start()
    params = {
        "model": model, "device": args.device, "warmup.text": "Hello.", "sampling.do_sample": False,
        "sampling.subtalker_dosample": False, "sampling.max_new_tokens": args.max_new_tokens,
        "playback.enabled": True, "playback.device": "pulse", "playback.start_buffer_s": args.start_buffer_s,
        "playback.latency_s": args.latency_s,
    }  # fmt: skip
    ns = "/playback_bench"
    proc = NodeProcess(overrides=params, namespace=ns, log_path=f"{tmp}/node.log", env=server.env)
    client = TtsClient(namespace=ns)
    first_sound, silence, node_ms = [], [], []
    try:
        client.get_state(timeout=120)
        assert client.change_state("configure") and client.change_state("activate"), proc.log_text()[-3000:]
        assert client.wait_for_subscriber(60)
        recorder = server.recorder()
        for run in range(args.runs):
            mark = client.mark()
            sent = client.say(TEXT)
            recorder.wait_until(sent)
            begin = recorder.index_at(sent)
            deadline = time.monotonic() + 120
            while not recorder.samples()[begin:].any():
                assert time.monotonic() < deadline, "no sound"
                time.sleep(0.005)
            rec = recorder.samples()
            start = begin + int(np.flatnonzero(rec[begin:])[0])
            first_sound.append((recorder.time_of(start) - sent) * 1e3)
            recorder.wait_until(recorder.time_of(start) + 0.3)
            while True:  # stop while it sounds: the newest 10 ms recorded are not silent (no underrun gap)
                recorder.wait_until(time.monotonic())
                if recorder.samples()[-RATE // 100 :].all():
                    break
                assert time.monotonic() < deadline, "no sound to stop"
            stop_sent = time.monotonic()
            client.stop()
            assert client.wait_done(mark, 60)
            record = client.latencies(mark["latency"])[0]
            node_ms.append((record.end_to_end_first_audio_ms, record.first_text_to_first_sound_ms))
            recorder.wait_until(stop_sent + 0.5)
            rec = recorder.samples()
            last = int(np.flatnonzero(rec[: recorder.index_at(stop_sent + 0.5)])[-1]) + 1
            silence.append((recorder.time_of(last) - stop_sent) * 1e3)
            print(f"run {run}: first text -> first sound {first_sound[-1]:.0f} ms (node: first chunk "
                  f"{node_ms[-1][0]:.0f} ms, first sound {node_ms[-1][1]:.0f} ms), stop -> silence "
                  f"{silence[-1]:.0f} ms", flush=True)  # fmt: skip
        recorder.stop()
    finally:
        client.close()
        proc.stop()
        server.stop()
    summary = {
        "params": {k: v for k, v in params.items() if k != "model"},
        "model": args.model or "tiny random checkpoint",
        "first_text_to_first_sound_ms": {"median": statistics.median(first_sound), "max": max(first_sound)},
        "stop_to_silence_ms": {"median": statistics.median(silence), "max": max(silence)},
        # The node's own records: text -> first chunk published, and -> first sample played (device clock).
        "node_end_to_end_first_audio_ms_median": statistics.median(a for a, _ in node_ms),
        "node_first_text_to_first_sound_ms_median": statistics.median(b for _, b in node_ms),
    }
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
