"""The progress bar both benchmark scripts use: tqdm where it is installed, else a plain line.

``progress_bar(total, desc, disable=False, unit="it")`` returns an object with ``update(n)``,
``set_postfix_str(text)``, ``close()`` and a writable ``total`` (the measurement core grows it
when it adds repeats). Without tqdm the fallback prints one line to stderr at every tenth of
the way, so a log file stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class PlainProgress:
    """Dependency-free stand-in for ``tqdm``: ``desc: k/total (p%) elapsed postfix`` on
    ``stream`` at each tenth of ``total`` (and at ``close``)."""

    def __init__(self, total: int, desc: str, disable: bool = False,
                 stream: TextIO | None = None) -> None:
        self.total, self.desc, self.disable = max(int(total), 1), desc, disable
        self.stream = stream if stream is not None else sys.stderr
        self.n, self.postfix, self._start, self._last_tenth = 0, "", time.monotonic(), 0

    def _print(self) -> None:
        if not self.disable:
            print(f"{self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%) "
                  f"{time.monotonic() - self._start:.0f}s"
                  + (f" {self.postfix[:60]}" if self.postfix else ""),
                  file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        tenth = int(10 * self.n / self.total)
        if tenth > self._last_tenth:
            self._last_tenth = tenth
            self._print()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if self._last_tenth < 10:
            self._print()


def progress_bar(total: int, desc: str, disable: bool = False, unit: str = "it") -> Any:
    """A bar over ``total`` steps; tqdm's if importable, else :class:`PlainProgress`."""
    if disable:
        return PlainProgress(total, desc, disable=True)
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, desc)
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
