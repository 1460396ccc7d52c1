"""What the node process does before its lifecycle starts: import torch and qwen-tts, quietly
(qwen3_tts_ros/quiet_import.py: their import banners become one debug line). Done in main() before the
executor spins, while no other thread of the process logs (its lines would be caught too).
"""

from __future__ import annotations

import threading

from qwen3_tts_ros.quiet_import import import_engine_quietly as import_quietly


def import_engine_quietly(log, stop: threading.Event) -> bool:
    """Import qwen-tts and the engine; False when `stop` was set first (SIGINT/SIGTERM: an import cannot be
    interrupted, so it runs on a daemon thread and the process may exit without waiting for it)."""
    log.info("importing torch and qwen-tts")
    result = import_quietly(stop)
    if not result.finished:
        log.info(f"exiting while importing torch and qwen-tts ({result.seconds:.1f} s in)")
        return False
    if result.error is not None:
        error = result.error
        log.warning(
            f"importing qwen-tts failed ({type(error).__name__}: {error}); it printed: {result.printed}"
        )
        return True
    if result.printed:
        log.debug(f"qwen-tts import printed (not this node's concern): {result.printed}")
    log.info(f"imported torch and qwen-tts in {result.seconds:.1f} s")
    return True


def waiting_for_configure(node_name: str) -> str:
    """The one line a node started without autostart logs (`ros2 run` starts it so): how to bring it up."""
    return (
        f"unconfigured: texts are refused until the node is configured and activated, by a lifecycle manager "
        f"or `ros2 lifecycle set {node_name} configure` then `ros2 lifecycle set {node_name} activate` "
        "(`ros2 launch qwen3_tts_ros tts.launch.py` and `-p autostart:=true` do both)"
    )
