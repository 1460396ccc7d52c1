"""Ctrl-C / SIGTERM of a real node process in every state: while importing torch and qwen-tts, loading the
model (configure running), warming up (activate running; the CUDA-graph capture and compile happen at the
same point on a GPU), idle and active, and speaking a say goal.

Each run starts the node with autostart (as `ros2 run` does; the launch file's configure / activate events
reach the same transitions) and sends the signal as soon as the node's log shows the step has begun. What is
asserted: exit status 0, no error or traceback in the log, nothing configured after the worker stopped, and
for the speaking goal its result (ended by "shutdown"). The time from the signal to the exit is printed,
never asserted. Last, the start-up log: its steps, and qwen-tts's import banners kept to one debug line.
"""
import os
import signal
import time

import pytest

rclpy = pytest.importorskip("rclpy")

TIMEOUT = 120.0
EXIT_LIMIT_S = 60.0  # generous: a wait that gives up, not a speed bound
ERROR_MARKS = ("Traceback", "Error", "[ERROR]", "failed", "[WARN]")


@pytest.mark.parametrize("step,sig", [
    ("importing torch and qwen-tts", signal.SIGINT),
    ("loading weights from", signal.SIGINT),
    ("loading weights from", signal.SIGTERM),
    ("warm-up:", signal.SIGINT),
    ("active:", signal.SIGINT),
    ("speaking", signal.SIGINT),
    ("speaking", signal.SIGTERM),
])
def test_signal_in_every_state_exits_cleanly(tmp_path, tiny_custom_voice_checkpoint, node_factory,
                                             base_overrides, long_text, step, sig):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint), autostart=True,
                     **{"warmup.text": "Warm up.", "sampling.max_new_tokens": 2048,
                        "text.split_sentences": False, "streaming.chunk_frames": 4})
    node = node_factory(tmp_path, overrides, env={"OMP_NUM_THREADS": "1"})
    proc, client = node.proc, node.client
    goal = None
    try:
        marker = "active:" if step == "speaking" else step
        assert client.wait_for(lambda: marker in node.log(20000) or proc.proc.poll() is not None, TIMEOUT), (
            f"the node never logged {marker!r}\n{node.log()}")
        if step == "speaking":
            goal = client.send_goal(long_text)
            assert client.wait_for(lambda: len(goal.feedback) > 1, TIMEOUT), node.log()
        t0 = time.monotonic()
        os.killpg(proc.proc.pid, sig)
        try:
            rc = proc.proc.wait(EXIT_LIMIT_S)
        except Exception:
            pytest.fail(f"no exit within {EXIT_LIMIT_S:.0f} s of {sig.name}\n{node.log()}")
        exit_s = time.monotonic() - t0
        log = node.log(50000)
        assert rc == 0, f"exit status {rc}\n{log}"
        bad = [line for line in log.splitlines() if any(m in line for m in ERROR_MARKS)]
        assert bad == [], "\n".join(bad)
        if "worker stopped" in log and "configured:" in log:
            assert log.index("configured:") < log.index("worker stopped"), log
        if goal is not None:
            assert client.wait_for(lambda: goal.finished, 10.0), f"no result for the speaking goal\n{log}"
            assert goal.status == "aborted" and goal.result.ended_by == "shutdown", (goal.status, goal.result)
        print(f"{sig.name} at {step!r}: exit 0 after {exit_s:.2f} s")
    finally:
        node.close()


def test_start_up_logs_its_steps_and_keeps_import_banners_in_one_debug_line(
        tmp_path, tiny_custom_voice_checkpoint, node_factory, base_overrides):
    """qwen-tts prints banners when imported (flash-attn, SoX: about 13 lines here, what a plain
    `python -c "import qwen_tts"` shows); the node catches them into one debug line and logs its own steps."""
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint), autostart=True,
                     **{"warmup.text": "Warm up."})
    node = node_factory(tmp_path / "info", overrides)
    try:
        assert node.client.wait_for(lambda: "active:" in node.log(20000), TIMEOUT), node.log()
        log = node.log(20000)
        for step in ("importing torch and qwen-tts", "imported torch and qwen-tts in", "loading weights from",
                     "weights loaded in", "configured:", "warm-up:", "active:"):
            assert step in log, f"{step!r} not logged\n{log}"
        assert "flash-attn" not in log and "SoX" not in log and "sox" not in log, log
    finally:
        assert node.close() == 0
    from qwen3_tts_ros.client import NodeProcess

    debug = NodeProcess(overrides={"autostart": False}, log_path=str(tmp_path / "debug.log"),
                        namespace="/debug_banner",
                        extra_ros_args=["--log-level", "debug_banner.qwen3_tts:=debug"])
    try:
        deadline = time.monotonic() + TIMEOUT
        while "imported torch and qwen-tts" not in debug.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        banner = [line for line in debug.log_text().splitlines() if "qwen-tts import printed" in line]
        assert len(banner) == 1 and "[DEBUG]" in banner[0] and "flash-attn" in banner[0], debug.log_text()
    finally:
        assert debug.stop() == 0
