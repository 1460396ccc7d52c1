"""Build the node's diagnostic_msgs/DiagnosticArray from the statistics the worker thread recorded.

diagnostic_updater is not available everywhere this node runs (not on PyPI), so the array is built here with
the same conventions: status names prefixed with the node name, string key/value pairs.
Pure function of a snapshot: no CUDA calls, safe on any executor thread.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

SYNTHESIS = "synthesis"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def synthesis_status(
    node_name: str, state: str, stats: dict[str, Any], counters: dict[str, int], hardware_id: str
) -> DiagnosticStatus:
    """One status "<node>: synthesis": OK when active and healthy, WARN when not active, ERROR on failure."""
    if stats.get("last_failed"):
        level, message = DiagnosticStatus.ERROR, f"last utterance failed: {stats.get('last_error', '')}"
    elif state != "active":
        level, message = DiagnosticStatus.WARN, f"not active ({state})"
    elif stats.get("speaking"):
        level, message = DiagnosticStatus.OK, "speaking"
    else:
        level, message = DiagnosticStatus.OK, "idle"
    values = [
        ("lifecycle_state", state),
        ("model", stats.get("model", "")),
        ("mode", stats.get("mode", "")),
        ("device", stats.get("device", "")),
        ("dtype", stats.get("dtype", "")),
        ("cuda_graphs_captured", bool(stats.get("cuda_graphs_captured", False))),
        ("capture_time_s", float(stats.get("capture_time_s", 0.0))),
        ("time_to_first_audio_ms_p50", float(stats.get("ttfa_p50_ms", 0.0))),
        ("time_to_first_audio_ms_p95", float(stats.get("ttfa_p95_ms", 0.0))),
        ("time_to_first_audio_ms_last", float(stats.get("ttfa_last_ms", 0.0))),
        ("rtf", float(stats.get("last_rtf", 0.0))),
        ("ms_per_frame", float(stats.get("last_ms_per_frame", 0.0))),
        ("speaking", bool(stats.get("speaking", False))),
        ("queue_depth", int(stats.get("queue_depth", 0))),
        ("utterances", int(stats.get("utterances", 0))),
        ("interrupted", int(stats.get("interrupted", 0))),
        ("errors", int(stats.get("errors", 0))),
        ("dropped", int(stats.get("dropped", 0))),
        ("texts_received", int(counters.get("received", 0))),
        ("rejected", int(counters.get("rejected", 0))),
        ("too_long", int(counters.get("too_long", 0))),
        ("empty", int(counters.get("empty", 0))),
        ("gpu_memory_allocated_mb", float(stats.get("gpu_memory_allocated_mb", 0.0))),
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
