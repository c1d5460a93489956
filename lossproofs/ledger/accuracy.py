"""torch's departures from its ULP bounds against the exact oracle (filled from the accuracy
suite's pinned cases)."""

from __future__ import annotations

ENTRIES: tuple = ()
