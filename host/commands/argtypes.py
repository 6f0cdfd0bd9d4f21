"""Argument types for the command line: a number within a range, with a message that says what
was expected, so a wrong value gets a sentence instead of a traceback."""
from __future__ import annotations

import argparse

from host.processing.exercise import THRESHOLD_MAX_DEG, THRESHOLD_MIN_DEG


def number(lo: float | None = None, hi: float | None = None, *, what: str = "a number",
           hi_open: bool = False, lo_open: bool = False):
    """An argparse type: a float within [lo, hi] (an end is open where asked, None = unbounded)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        too_low = lo is not None and (v <= lo if lo_open else v < lo)
        too_high = hi is not None and (v >= hi if hi_open else v > hi)
        if too_low or too_high or v != v:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v:g}")
        return v
    return parse


threshold_deg = number(THRESHOLD_MIN_DEG, THRESHOLD_MAX_DEG,
                       what=f"a threshold from {THRESHOLD_MIN_DEG:g} to {THRESHOLD_MAX_DEG:g} degrees")
fraction = number(0.0, 1.0, what="a number from 0 to 1")
loss_fraction = number(0.0, 1.0, hi_open=True, what="a fraction from 0 to below 1, such as 0.05")
positive = number(0.0, lo_open=True, what="a number above 0")
