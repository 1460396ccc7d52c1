"""Import torch, qwen-tts and the engine with what they print on import caught (the node and the CLI).

qwen-tts and the packages it imports print banners on import ("Warning: flash-attn is not installed ...",
"/bin/sh: 1: sox: not found", "SoX could not be found! ..."): about 13 lines that mean nothing here (neither
flash-attention nor SoX is used). They are written to the process's stdout/stderr file descriptors, partly
by a subprocess, so the import runs with fds 1 and 2 pointed at a temporary file; the caller gets what was
caught. Call it while no other thread of the process writes (its lines would be caught too). qwen-tts itself
is not touched. No ROS import.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
import time


@dataclasses.dataclass
class ImportResult:
    finished: bool  # False: `stop` was set first (the import goes on in a daemon thread)
    error: BaseException | None  # what the import raised
    printed: str  # what it printed, its non-empty lines joined with " | "
    seconds: float


def import_engine_quietly(stop: threading.Event | None = None) -> ImportResult:
    """Import qwen-tts and the engine on a daemon thread (an import cannot be interrupted: with `stop` set,
    e.g. by SIGINT/SIGTERM, the caller may go on and exit without waiting for it)."""
    t0 = time.monotonic()
    error: list[BaseException] = []

    def run() -> None:
        try:
            import qwen_tts  # noqa: F401

            import qwen3_tts_ros.engine  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            error.append(exc)

    with tempfile.TemporaryFile() as caught:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(caught.fileno(), 1)
        os.dup2(caught.fileno(), 2)
        try:
            thread = threading.Thread(target=run, name="qwen3_tts_import", daemon=True)
            thread.start()
            while thread.is_alive() and not (stop is not None and stop.is_set()):
                thread.join(0.1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        caught.seek(0)
        lines = [line.strip() for line in caught.read().decode("utf-8", "replace").splitlines()]
    return ImportResult(
        finished=not thread.is_alive(),
        error=error[0] if error else None,
        printed=" | ".join(line for line in lines if line),
        seconds=time.monotonic() - t0,
    )
