"""Stored things in a few plain words, for the console, the reports and the windows alike."""
from __future__ import annotations

from host import store


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe_block(s: store.BlockInfo) -> str:
    return (f"{s.exercise}, standing on the {s.stance} leg, thresholds left {s.threshold_left_deg:g}° / "
            f"right {s.threshold_right_deg:g}°, {s.estimator}")
