"""A progress bar that uses tqdm where it is installed and a one-line fallback where it is not."""

from __future__ import annotations

import sys
import time
from typing import Any


class _PlainBar:
    """Minimal stand-in for ``tqdm``: ``update``, ``set_postfix_str`` and ``close`` on stderr."""

    def __init__(self, total: int, desc: str, disable: bool) -> None:
        self.total, self.desc, self.disable = total, desc, disable
        self.n, self.postfix, self._start = 0, "", time.monotonic()

    def _draw(self, end: str = "\r") -> None:
        if self.disable:
            return
        width = 24
        filled = int(width * self.n / self.total) if self.total else width
        elapsed = time.monotonic() - self._start
        sys.stderr.write(f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.n}/{self.total} {elapsed:6.1f}s {self.postfix[:60]:60s}{end}")
        sys.stderr.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self._draw()

    def close(self) -> None:
        self._draw(end="\n")


def progress_bar(total: int, desc: str, disable: bool = False) -> Any:
    """A bar over ``total`` steps; tqdm's if importable, else :class:`_PlainBar`."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(total, desc, disable)
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, file=sys.stderr)
