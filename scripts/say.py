#!/usr/bin/env python3
"""Speak one text through the qwen3_tts node, as a ROS user would, and write the audio to a WAV file.

    python scripts/say.py "Hello, I am your robot." [--out out/demo.wav] [--params-file config/tts.yaml]
                          [-p model:=/models/Qwen3-TTS-12Hz-0.6B-CustomVoice ...] [--no-spawn]
                          [--action [--wait-for-playback]]

1. starts the node as a real process (python -m qwen3_tts_ros.node.tts_node --ros-args --params-file ...),
   unless --no-spawn (then it drives the node that is already running, e.g. from `ros2 launch`);
2. drives it to active through the standard lifecycle service <ns>/qwen3_tts/change_state;
3. publishes the text on <ns>/tts/text (with --action: sends it as a goal to <ns>/qwen3_tts/say and waits
   for the result), collects <ns>/tts/audio until the final chunk, writes the WAV;
4. prints time to first audio and real-time factor, as seen here (end to end, through DDS) and as the node
   measured it (generation start -> first chunk published), so what ROS adds is visible.
Exits non-zero when anything fails (the node's log is kept next to the WAV).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import wave

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", nargs="*", help="text to speak (default: a demo sentence)")
    ap.add_argument("--out", default=str(REPO / "out" / "demo.wav"), help="WAV file to write")
    ap.add_argument("--params-file", default=str(REPO / "config" / "tts.yaml"), help="node parameters (YAML)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="parameter override passed to the node (repeatable)")
    ap.add_argument("--namespace", default="", help="namespace of the node and its topics")
    ap.add_argument("--no-spawn", action="store_true", help="use the node that is already running")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for each step")
    ap.add_argument("--action", action="store_true",
                    help="send the text as a goal of the say action and wait for its result (not tts/text)")
    ap.add_argument("--wait-for-playback", action="store_true",
                    help="with --action: the goal ends when the audio would have finished playing")
    return ap.parse_args(argv)


def write_wav(path: pathlib.Path, pcm: bytes, sample_format: str, sample_rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2" if sample_format == "S16LE" else "<f4")
    if samples.dtype != np.dtype("<i2"):  # WAV via the stdlib writes integer PCM only
        samples = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.tobytes())
    return samples.size / sample_rate


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    text = " ".join(args.text) or "Hello, I am your robot. This is Qwen3-TTS speaking through ROS 2."
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    from qwen3_tts_ros.client import NodeProcess, TtsClient

    proc = None
    if not args.no_spawn:
        extra = [a for p in args.param for a in ("-p", p)]
        log_path = str(out.with_suffix(".node.log"))
        proc = NodeProcess(params_file=args.params_file, namespace=args.namespace, log_path=log_path,
                           extra_ros_args=extra)
        print(f"started the node: {' '.join(proc.cmd)}  (log: {log_path})")
    client = TtsClient(namespace=args.namespace)
    try:
        return run(client, proc, text, out, args.timeout, args.action, args.wait_for_playback)
    except (TimeoutError, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        if proc is not None:
            tail = "\n".join(proc.log_text().splitlines()[-30:])
            print(f"---- node log (tail) ----\n{tail}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if proc is not None:
            proc.stop()


def check_alive(proc) -> None:
    if proc is not None and proc.proc.poll() is not None:
        raise RuntimeError(f"the node process exited with code {proc.proc.returncode}")


def wait_up(client, proc, timeout: float) -> str:
    """The node's lifecycle state once its services answer; fails at once if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        check_alive(proc)
        try:
            return client.get_state(timeout=2.0)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def run(client, proc, text: str, out: pathlib.Path, timeout: float, action: bool = False,
        wait_for_playback: bool = False) -> int:
    t0 = time.monotonic()
    state = wait_up(client, proc, timeout)
    print(f"node is up ({state}) after {time.monotonic() - t0:.1f} s")
    if state == "unconfigured":
        t = time.monotonic()
        if not client.change_state("configure", timeout=timeout):
            raise RuntimeError("configure failed (see the node log)")
        print(f"configured (model loaded) in {time.monotonic() - t:.1f} s")
        state = "inactive"
    if state == "inactive":
        t = time.monotonic()
        if not client.change_state("activate", timeout=timeout):
            raise RuntimeError("activate failed (see the node log)")
        print(f"activated (CUDA graphs / warm-up) in {time.monotonic() - t:.1f} s")
    elif state != "active":
        raise RuntimeError(f"node is {state}; cannot use it")
    if not client.wait_for_subscriber(timeout=timeout):
        raise TimeoutError("no subscriber on tts/text")

    mark = client.mark()
    dead = proc is not None and (lambda: proc.proc.poll() is not None)
    if action:
        goal = client.send_goal(text, wait_for_playback=wait_for_playback, timeout=timeout)
        sent = goal.sent_at
        if not client.wait_for(lambda: goal.finished or (dead and dead()), timeout):
            raise TimeoutError(f"the say goal did not finish within {timeout:.0f} s")
        check_alive(proc)
        if not goal.accepted:
            raise RuntimeError("the say goal was rejected (the node's log says why)")
        r = goal.result
        print(f"say goal {goal.status}: ended by {r.ended_by}{f' ({r.error})' if r.error else ''}, "
              f"utterances {list(r.utterance_ids)}, {r.audio_seconds:.2f} s of audio, "
              f"{len(goal.feedback)} feedback messages, result {goal.result_at - sent:.2f} s after sending")
        if goal.status != "succeeded":
            raise RuntimeError(f"the say goal {goal.status}")
    else:
        sent = client.say(text)
    if not client.wait_for(lambda: client.done_since(mark) or (dead and dead()), timeout):
        raise TimeoutError(f"the utterance did not complete within {timeout:.0f} s")
    check_alive(proc)
    groups = client.utterances(mark["chunks"])
    pcm = b""
    for uid in sorted(groups):
        seqs = [r.msg.sequence for r in groups[uid]]
        if seqs != list(range(len(seqs))):
            raise RuntimeError(f"utterance {uid}: sequence numbers not contiguous: {seqs}")
        pcm += b"".join(bytes(r.msg.audio.data) for r in groups[uid])
    chunks = [r for uid in sorted(groups) for r in groups[uid]]
    info = chunks[0].msg.info
    audio_s = write_wav(out, pcm, info.sample_format, info.sample_rate)
    if audio_s <= 0:
        raise RuntimeError("no audio samples received")
    first_audio = next(r for r in chunks if len(r.msg.audio.data))
    e2e_ttfa_ms = (first_audio.at - sent) * 1e3
    e2e_s = chunks[-1].at - sent
    lat = [m for m in client.latencies(mark["latency"]) if m.utterance_id in groups]
    first = min(lat, key=lambda m: m.utterance_id)
    node_rtf = sum(m.audio_seconds for m in lat) / max(sum(m.synthesis_seconds for m in lat), 1e-9)

    print(f"wrote {out}: {audio_s:.2f} s of audio, {len(groups)} utterance(s), {len(chunks)} chunks, "
          f"{info.sample_rate} Hz {info.sample_format}")
    print(f"time to first audio, end to end (publish text -> first chunk received here): "
          f"{e2e_ttfa_ms:8.1f} ms")
    print(f"time to first audio, in the node (generation start -> first chunk published):  "
          f"{first.time_to_first_audio_ms:8.1f} ms  (prefill {first.prefill_ms:.1f} ms, "
          f"queue wait {first.queue_wait_ms:.1f} ms)")
    print(f"what ROS adds (DDS text + callback + queue + DDS chunk):                       "
          f"{e2e_ttfa_ms - first.time_to_first_audio_ms:8.1f} ms")
    print(f"real-time factor (audio s / wall s; >1 is faster than real time): "
          f"end to end {audio_s / e2e_s:.2f}, in the node {node_rtf:.2f}")
    if os.environ.get("QWEN3_TTS_ROS_SAY_JSON"):  # machine-readable summary for tests and benchmarks
        import json

        pathlib.Path(os.environ["QWEN3_TTS_ROS_SAY_JSON"]).write_text(json.dumps(dict(
            audio_seconds=audio_s, utterances=len(groups), chunks=len(chunks), e2e_ttfa_ms=e2e_ttfa_ms,
            node_ttfa_ms=first.time_to_first_audio_ms, prefill_ms=first.prefill_ms, e2e_rtf=audio_s / e2e_s,
            node_rtf=node_rtf)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
