"""Hypothesis strategies for the suite (ordinary inputs here; extremes in ``.extreme``)."""
