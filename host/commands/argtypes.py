"""Argument types for the command line: a number within a range, with a message that says what
was expected, so a wrong value gets a sentence instead of a traceback."""
from __future__ import annotations

import argparse

import math

from host.processing.exercise import HYSTERESIS_MAX_DEG, MIN_ON_MAX_S, SET_REPS_MAX, THRESHOLD_MAX_DEG, THRESHOLD_MIN_DEG


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
        if too_low or too_high or not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v:g}")
        return v
    return parse


def integer(lo: int | None = None, hi: int | None = None, *, what: str = "a whole number"):
    """An argparse type: an int within [lo, hi] (None = unbounded)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v
    return parse


threshold_deg = number(THRESHOLD_MIN_DEG, THRESHOLD_MAX_DEG,
                       what=f"a threshold from {THRESHOLD_MIN_DEG:g} to {THRESHOLD_MAX_DEG:g} degrees")
fraction = number(0.0, 1.0, what="a number from 0 to 1")
loss_fraction = number(0.0, 1.0, hi_open=True, what="a fraction from 0 to below 1, such as 0.05")
positive = number(0.0, lo_open=True, what="a number above 0")
hysteresis_deg = number(0.0, HYSTERESIS_MAX_DEG, what=f"a hysteresis from 0 to {HYSTERESIS_MAX_DEG:g} degrees")
min_on_s = number(0.0, MIN_ON_MAX_S, what=f"a shortest cue from 0 to {MIN_ON_MAX_S:g} seconds")
set_reps = integer(0, SET_REPS_MAX, what=f"reps per set, a whole number from 0 to {SET_REPS_MAX}")
tcp_port = integer(1, 65535, what="a TCP port from 1 to 65535")
