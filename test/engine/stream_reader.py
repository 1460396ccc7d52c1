"""Reading an AudioStream on a thread of its own, so a test can write the text while it is spoken."""

import threading


class StreamReader:
    """Iterates `stream` on a daemon thread: `chunks` so far, `first_audio` (a chunk with frames came) and
    `done` (the final chunk came, or the iteration raised: `error`)."""

    def __init__(self, stream):
        self.stream, self.chunks, self.error = stream, [], None
        self.first_audio, self.done = threading.Event(), threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for chunk in self.stream:
                self.chunks.append(chunk)
                if chunk.frame_count:
                    self.first_audio.set()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            self.done.set()
