"""Warnings that can come hundreds of times a second (texts dropped under a flood, texts sent to a node that
is not active), logged at most once per period each, with the true count: the counts of one kind's lines add
up to the number of events. rclpy's throttled logging would drop the lines in between and their counts with
them (a flood of 183 dropped texts was logged as "dropped 1")."""

from __future__ import annotations

import threading
import time
from typing import Any

REPORT_PERIOD_S = 5.0  # longest a counted event waits before a line reports it (the node's flush timer)


class CountedWarnings:
    """`add(template, n)` counts n events of the kind `template` (a str.format template with `{n}`): the first
    of a period is logged at once, later ones are summed into the next line, written by the next `add` of
    that kind after the period or by `flush` (the node calls it every REPORT_PERIOD_S)."""

    def __init__(self, logger: Any, period_s: float = REPORT_PERIOD_S):
        self._log = logger
        self._period_s = period_s
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    def add(self, template: str, n: int = 1) -> None:
        if n <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._pending[template] = self._pending.get(template, 0) + n
            last = self._logged_at.get(template)
            if last is not None and now - last < self._period_s:
                return
            lines = self._take([template], now)
        self._write(lines)

    def flush(self) -> None:
        """Log every count still waiting for its line."""
        with self._lock:
            lines = self._take(list(self._pending), time.monotonic())
        self._write(lines)

    def _take(self, templates: list[str], now: float) -> list[str]:  # with the lock held
        lines = []
        for template in templates:
            n = self._pending.pop(template, 0)
            if n:
                self._logged_at[template] = now
                lines.append(template.format(n=n))
        return lines

    def _write(self, lines: list[str]) -> None:  # without the lock: the logger may block
        for line in lines:
            self._log.warning(line)
