"""Draw a list of examples from a strategy outside a test (the reports' seeded samples, the
strategy tests' derandomized ones): generation only, no shrinking, no example database."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st


def sample(strategy: st.SearchStrategy, n: int, seed: int | None = None) -> list:
    """``n`` examples of ``strategy``: with ``seed`` (reproducible from it, as the reports
    need), else derandomized (hypothesis' fixed derivation from the drawing function)."""
    drawn: list = []

    @settings(max_examples=n, database=None, deadline=None, derandomize=seed is None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data):
        drawn.append(data.draw(strategy))

    if seed is not None:
        collect = hypothesis_seed(seed)(collect)
    collect()
    return drawn
