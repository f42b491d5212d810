"""A dependency-free progress bar for long transfers: bytes, rate and ETA on a terminal, nothing otherwise.

Redraws at most ~10 times a second on one line (carriage return), so it costs nothing measurable next to
the transfer; thread-safe because block uploads report from worker threads. When the stream is not a TTY
(CI logs, pipes) it draws nothing and callers print plain summary lines instead.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_S = 0.1


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """`update(sent, total)` as bytes go out; `close()` clears the line."""

    def __init__(self, label: str, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._label = label
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self.enabled = stream.isatty()

    def update(self, sent: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            if now - self._last_draw < REDRAW_S and sent < total:
                return
            self._last_draw = now
            self._stream.write("\r" + self.render(sent, total, now - self._started))
            self._stream.flush()

    def render(self, sent: int, total: int, elapsed: float) -> str:
        width = shutil.get_terminal_size((100, 20)).columns
        rate = sent / elapsed if elapsed > 0 else 0.0
        eta = human_duration((total - sent) / rate) if rate > 0 and total >= sent else "--:--"
        share = sent / total if total else 1.0
        stats = (
            f" {share * 100:5.1f}% {human_bytes(sent)}/{human_bytes(total)} {human_bytes(rate)}/s ETA {eta}"
        )
        label = self._label[:30]
        bar_width = max(10, width - len(label) - len(stats) - 4)
        filled = int(bar_width * min(1.0, share))
        line = f"{label} [{'#' * filled}{'.' * (bar_width - filled)}]{stats}"
        return line[: width - 1]

    def close(self) -> None:
        if self.enabled:
            width = shutil.get_terminal_size((100, 20)).columns
            self._stream.write("\r" + " " * (width - 1) + "\r")
            self._stream.flush()
