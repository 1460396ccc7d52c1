"""Build the node's diagnostic_msgs/DiagnosticArray from the statistics the worker thread recorded.

diagnostic_updater is not available everywhere this node runs (not on PyPI), so the array is built here with
the same conventions: status names prefixed with the node name, string key/value pairs.
Pure function of a snapshot: no CUDA calls, safe on any executor thread.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from qwen3_tts_ros.node.worker_stats import WorkerStats

SYNTHESIS = "synthesis"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def synthesis_status(  # fmt: skip
    node_name: str, state: str, stats: WorkerStats, counters: dict[str, int], stream_counters: dict[str, int],
    hardware_id: str, configure_error: str = "",
) -> DiagnosticStatus:
    """One status "<node>: synthesis": OK when active and healthy, WARN when not active, ERROR on failure
    (configure_error: why the last configure failed, "" once one succeeded; reported until then).
    counters: tts/text's (text_input.py); stream_counters: tts/text_stream's (stream_assembly.COUNTERS), each
    published as stream_<name>."""
    if configure_error:
        level, message = DiagnosticStatus.ERROR, f"configure failed: {configure_error}"
    elif stats.last_failed:
        level, message = DiagnosticStatus.ERROR, f"last utterance failed: {stats.last_error}"
    elif state != "active":
        level, message = DiagnosticStatus.WARN, f"not active ({state})"
    elif stats.speaking:
        level, message = DiagnosticStatus.OK, "speaking"
    else:
        level, message = DiagnosticStatus.OK, "idle"
    values = [
        ("lifecycle_state", state),
        ("model", stats.model),
        ("mode", stats.mode),
        ("device", stats.device),
        ("dtype", stats.dtype),
        ("frame_path", stats.frame_path),
        ("cuda_graphs_captured", bool(stats.cuda_graphs_captured)),
        ("capture_time_s", float(stats.capture_time_s)),
        ("time_to_first_audio_ms_p50", float(stats.ttfa_p50_ms)),
        ("time_to_first_audio_ms_p95", float(stats.ttfa_p95_ms)),
        ("time_to_first_audio_ms_last", float(stats.ttfa_last_ms)),
        ("rtf", float(stats.last_rtf)),
        ("ms_per_frame", float(stats.last_ms_per_frame)),
        ("speaking", bool(stats.speaking)),
        ("queue_depth", int(stats.queue_depth)),
        ("utterances", int(stats.utterances)),
        ("interrupted", int(stats.interrupted)),
        ("errors", int(stats.errors)),
        ("runaway", int(stats.runaway)),
        ("dropped", int(stats.dropped)),
        ("texts_received", int(counters.get("received", 0))),
        ("rejected", int(counters.get("rejected", 0))),
        ("too_long", int(counters.get("too_long", 0))),
        ("empty", int(counters.get("empty", 0))),
        ("request_rejected", int(counters.get("request_rejected", 0))),
        *((f"stream_{name}", int(value)) for name, value in stream_counters.items()),
        ("gpu_memory_allocated_mb", float(stats.gpu_memory_allocated_mb)),
    ]
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: {SYNTHESIS}",
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values],
    )


def diagnostic_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = statuses
    return msg
