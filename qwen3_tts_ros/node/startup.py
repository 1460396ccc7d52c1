"""What the node process does before its lifecycle starts: import torch and qwen-tts, quietly.

qwen-tts and the packages it imports print banners on import ("Warning: flash-attn is not installed ...",
"/bin/sh: 1: sox: not found", "SoX could not be found! ..."): about 13 lines that mean nothing for this
node (it runs neither flash-attention nor SoX). They are written to the process's stdout/stderr file
descriptors, partly by a subprocess, so the import runs with fds 1 and 2 pointed at a temporary file and
what it caught becomes one debug line. Done in main() before the executor spins, while no other thread of
the process logs (its lines would be caught too). qwen-tts itself is not touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time


def import_engine_quietly(log, stop: threading.Event) -> bool:
    """Import qwen-tts and the engine; False when `stop` was set first (SIGINT/SIGTERM: an import cannot be
    interrupted, so it runs on a daemon thread and the process may exit without waiting for it)."""
    log.info("importing torch and qwen-tts")
    t0 = time.monotonic()
    error: list[BaseException] = []

    def run() -> None:
        try:
            import qwen_tts  # noqa: F401

            import qwen3_tts_ros.engine  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - configure reports a missing or broken qwen-tts
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
            while thread.is_alive() and not stop.is_set():
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
    text = " | ".join(line for line in lines if line)
    if thread.is_alive():
        log.info(f"exiting while importing torch and qwen-tts ({time.monotonic() - t0:.1f} s in)")
        return False
    if error:
        log.warning(f"importing qwen-tts failed ({type(error[0]).__name__}: {error[0]}); it printed: {text}")
        return True
    if text:
        log.debug(f"qwen-tts import printed (not this node's concern): {text}")
    log.info(f"imported torch and qwen-tts in {time.monotonic() - t0:.1f} s")
    return True
