"""What the display reads: a ring buffer of recent angles plus the latest status.

The pipeline thread writes (one `append` per sample, `status` updates on events); the GUI or console
view reads on its own timer (`snapshot`, `status_copy`). A lock keeps each read consistent; neither
side ever waits on the other for longer than a copy of at most `capacity` floats.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from host.processing.exercise import THRESHOLD_DEFAULT_DEG, free_side_of, free_threshold_of


LEVEL_BAND_DEG = 1.0  # below this the patient's text says "Level" rather than "Right hip 0° low"


def describe_obliquity(obliquity_deg: float) -> str:
    """The patient's sentence for an angle, the same in the window, the console and the review:
    "Right hip 6° low" / "Level" (positive obliquity = left side high = right hip low)."""
    if not math.isfinite(obliquity_deg):
        return "–"
    if abs(obliquity_deg) < LEVEL_BAND_DEG:
        return "Level"
    side = "Right" if obliquity_deg > 0 else "Left"
    return f"{side} hip {abs(obliquity_deg):.0f}° low"


@dataclass
class LiveStatus:
    calibrated: bool = False
    calibrating: bool = False
    stance: str = "left"             # stance leg; the free side is the other one
    exercise: str = "hip-dip"
    threshold_left_deg: float = THRESHOLD_DEFAULT_DEG   # drop of the left side that triggers the cue
    threshold_right_deg: float = THRESHOLD_DEFAULT_DEG
    # thresholds changed during the session: (t_s, side, deg before, deg after) each, so the plot
    # keeps what came before against the line it was judged by
    threshold_changes: tuple = ()
    obliquity_deg: float = float("nan")   # latest, positive = left side high
    forward_tilt_deg: float = float("nan")
    cue_on: bool = False
    reps: int = 0
    last_rep: dict = field(default_factory=dict)
    last_summary: dict = field(default_factory=dict)  # the last set_summary event
    last_step: dict = field(default_factory=dict)     # walk: the last step event
    steps: list = field(default_factory=list)         # walk: (mid-step t, swing side, drop) of recent steps, for the bars
    link: str = "connecting"          # connecting | streaming | disconnected | ended | error
    message: str = ""                 # one plain sentence for the user
    lost_samples: int = 0
    samples: int = 0
    ended: bool = False

    @property
    def free_side(self) -> str:
        return free_side_of(self.stance)

    @property
    def free_threshold_deg(self) -> float:
        return free_threshold_of(self)


class LiveBuffer:
    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._t = np.full(capacity, np.nan)
        self._obl = np.full(capacity, np.nan)
        self._fwd = np.full(capacity, np.nan)
        self._cue = np.zeros(capacity, dtype=bool)
        self._n = 0  # total appended
        self._lock = threading.Lock()
        self.status = LiveStatus()

    def append(self, t_s: float, obliquity_deg: float, forward_tilt_deg: float, cue_on: bool) -> None:
        with self._lock:
            i = self._n % self.capacity
            self._t[i] = t_s
            self._obl[i] = obliquity_deg
            self._fwd[i] = forward_tilt_deg
            self._cue[i] = cue_on
            self._n += 1

    def update_status(self, **fields) -> None:
        with self._lock:
            self.status = replace(self.status, **fields)

    def status_copy(self) -> LiveStatus:
        with self._lock:
            return self.status

    def snapshot(self, window_s: float = 10.0):
        """(t_s, obliquity_deg, forward_tilt_deg, cue_on) of the last `window_s` seconds, oldest first."""
        with self._lock:
            n = min(self._n, self.capacity)
            start = self._n - n
            idx = np.arange(start, self._n) % self.capacity
            t, obl, fwd, cue = self._t[idx], self._obl[idx], self._fwd[idx], self._cue[idx]
        if n:
            keep = t >= t[-1] - window_s
            t, obl, fwd, cue = t[keep], obl[keep], fwd[keep], cue[keep]
        return t, obl, fwd, cue
