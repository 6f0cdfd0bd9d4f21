"""Exercise logic: pelvic angles in, cue decisions, reps and per-rep numbers out (as events).

In: per sample, device time (s), obliquity (deg, positive = left high) and forward tilt (deg).
Out: `update()` returns a list of events (dicts with "event" and "t") — `cue_on`, `cue_off`, `rep` —
and keeps `cue_on` / `free_drop_deg` for the live view and the audio cue.

The cue watches the free side (opposite the stance leg): on when its drop exceeds the threshold,
off once it has come back by the hysteresis margin, so noise around the threshold cannot chatter.
"""
from __future__ import annotations

from dataclasses import dataclass

EXERCISES = ("hip-dip", "single-leg-squat", "keep-level")


@dataclass
class ExerciseConfig:
    exercise: str = "hip-dip"
    stance: str = "left"
    threshold_left_deg: float = 5.0
    threshold_right_deg: float = 5.0
    hysteresis_deg: float = 1.0
    rep_start_deg: float = 2.0    # hip dip: a rep starts when the free side drops this far...
    rep_end_deg: float = 1.0      # ...and ends when it is back within this of level
    squat_start_deg: float = 10.0  # single-leg squat: forward lean that starts a rep
    squat_end_deg: float = 5.0

    def __post_init__(self):
        if self.exercise not in EXERCISES:
            raise ValueError(f"unknown exercise {self.exercise!r}; choose from {', '.join(EXERCISES)}")
        if self.stance not in ("left", "right"):
            raise ValueError("stance must be left or right")
        for side in ("left", "right"):
            v = getattr(self, f"threshold_{side}_deg")
            if not 0.5 <= v <= 30:
                raise ValueError(f"the {side} threshold must be within 0.5..30 degrees, not {v}")

    @property
    def free_side(self) -> str:
        return "right" if self.stance == "left" else "left"

    @property
    def threshold_deg(self) -> float:
        return self.threshold_right_deg if self.free_side == "right" else self.threshold_left_deg


class Exercise:
    def __init__(self, cfg: ExerciseConfig):
        self.cfg = cfg
        self.cue_on = False
        self.free_drop_deg = 0.0
        self.reps = 0
        self._in_rep = False
        self._rep_start_t = 0.0
        self._rep_max_drop = 0.0
        self._rep_cued = False

    def drop_deg(self, obliquity_deg: float, side: str) -> float:
        """How far `side` is below level (docs/conventions.md)."""
        return obliquity_deg if side == "right" else -obliquity_deg

    def update(self, t_s: float, obliquity_deg: float, forward_tilt_deg: float) -> list[dict]:
        cfg = self.cfg
        side = cfg.free_side
        drop = self.drop_deg(obliquity_deg, side)
        self.free_drop_deg = drop
        events = []
        thr = cfg.threshold_deg
        if not self.cue_on and drop > thr:
            self.cue_on = True
            self._rep_cued = True
            events.append({"event": "cue_on", "t": t_s, "low_side": side, "angle_deg": round(drop, 2)})
        elif self.cue_on and drop < thr - cfg.hysteresis_deg:
            self.cue_on = False
            events.append({"event": "cue_off", "t": t_s, "low_side": side, "angle_deg": round(drop, 2)})

        if cfg.exercise == "keep-level":
            return events
        if cfg.exercise == "single-leg-squat":
            starting, ending = forward_tilt_deg > cfg.squat_start_deg, forward_tilt_deg < cfg.squat_end_deg
        else:
            starting, ending = drop > cfg.rep_start_deg, drop < cfg.rep_end_deg
        if not self._in_rep and starting:
            self._in_rep = True
            self._rep_start_t = t_s
            self._rep_max_drop = drop
            self._rep_cued = self.cue_on
        elif self._in_rep:
            self._rep_max_drop = max(self._rep_max_drop, drop)
            if ending:
                self._in_rep = False
                self.reps += 1
                events.append({"event": "rep", "t": t_s, "index": self.reps, "low_side": side,
                               "max_drop_deg": round(self._rep_max_drop, 2),
                               "duration_s": round(t_s - self._rep_start_t, 2), "cued": self._rep_cued})
        return events
