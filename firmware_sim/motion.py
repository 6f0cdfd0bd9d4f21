"""Kinematic model of the pelvis during the scripted exercises: the simulator's ground truth.

`Scenario` describes what the patient does (exercise, stance leg, per-rep drops, tempo). Its
`pelvis(t_s)` gives, for any array of true times, the pelvis orientation as rotation matrices
(pelvis frame -> earth frame, see docs/conventions.md) and the pelvis position in metres. The true
obliquity is exactly the scripted angle because the orientation is built as
R = Rz(heading) @ Rx(obliquity) @ Ry(forward lean): the left axis's elevation only depends on Rx.

Timeline: `still_s` standing still and level (calibration), then one rep after another, then
`end_still_s` standing still. A rep lowers the free side (opposite the stance leg) by its drop and
brings it back with minimum-jerk profiles; the single-leg squat also leans forward and lowers the
pelvis, so the accelerometer sees more than gravity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXERCISES = ("stand", "hip-dip", "single-leg-squat")
SIDES = ("left", "right")


def min_jerk(u: np.ndarray) -> np.ndarray:
    """0 -> 1 smoothly for u in [0, 1] (zero velocity and acceleration at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


@dataclass
class Scenario:
    exercise: str = "hip-dip"
    stance: str = "left"
    drops_deg: list[float] = field(default_factory=lambda: [6.0, 6.0, 6.0, 6.0, 6.0])
    rep_s: float = 3.5           # one rep, including the pause after it
    lean_deg: float = 30.0       # single-leg squat: peak forward lean
    squat_depth_m: float = 0.15  # single-leg squat: how far the pelvis goes down
    still_s: float = 3.0
    end_still_s: float = 1.0
    sway: bool = True            # small natural sway after calibration (truth includes it)

    def __post_init__(self):
        if self.exercise not in EXERCISES:
            raise ValueError(f"unknown exercise {self.exercise!r}; choose from {', '.join(EXERCISES)}")
        if self.stance not in SIDES:
            raise ValueError(f"stance must be left or right, not {self.stance!r}")
        if self.rep_s <= 0.5:
            raise ValueError("a rep must last more than 0.5 s")
        self.drops_deg = [float(d) for d in self.drops_deg]

    @property
    def free_side(self) -> str:
        return "right" if self.stance == "left" else "left"

    @property
    def reps(self) -> int:
        return len(self.drops_deg)

    @property
    def duration_s(self) -> float:
        return self.still_s + self.reps * self.rep_s + self.end_still_s

    def rep_index(self, t_s: np.ndarray) -> np.ndarray:
        """Which rep each time falls in (-1 outside the reps)."""
        i = np.floor((np.asarray(t_s, float) - self.still_s) / self.rep_s).astype(int)
        return np.where((i >= 0) & (i < self.reps), i, -1)

    def _rep_profile(self, t_s: np.ndarray):
        """(fraction of the rep's excursion 0..1, drop of that rep in deg) for each time."""
        i = self.rep_index(t_s)
        u = (t_s - self.still_s) / self.rep_s - i  # phase within the rep
        # down in 40% of the rep, hold 10%, back up in 35%, pause 15%
        shape = np.where(u < 0.5, min_jerk(u / 0.4), 1.0 - min_jerk((u - 0.5) / 0.35))
        drops = np.asarray(self.drops_deg + [0.0])[i]  # index -1 -> the appended 0
        active = i >= 0
        return np.where(active, shape, 0.0), np.where(active, drops, 0.0)

    def angles_deg(self, t_s):
        """(obliquity_deg, forward_lean_deg, heading_deg) at true times t_s (seconds since start)."""
        t = np.asarray(t_s, dtype=float)
        shape, drops = self._rep_profile(t)
        if self.exercise == "stand":
            shape = np.zeros_like(t)
        # free side right low = left side high = positive obliquity
        sign = 1.0 if self.free_side == "right" else -1.0
        obliquity = sign * drops * shape
        lean = self.lean_deg * shape if self.exercise == "single-leg-squat" else np.zeros_like(t)
        heading = np.zeros_like(t)
        if self.sway:
            env = min_jerk((t - self.still_s) / 1.0)  # sway starts after the calibration phase
            obliquity = obliquity + env * (0.25 * np.sin(2 * np.pi * 0.23 * t)
                                           + 0.15 * np.sin(2 * np.pi * 0.61 * t + 1.0))
            lean = lean + env * 0.8 * np.sin(2 * np.pi * 0.17 * t + 0.3)
            heading = env * 3.0 * np.sin(2 * np.pi * 0.11 * t)
        return obliquity, lean, heading

    def pelvis(self, t_s):
        """(R_pelvis_to_earth (n,3,3), position_m (n,3)) at true times t_s."""
        t = np.asarray(t_s, dtype=float)
        obl, lean, heading = (np.radians(a) for a in self.angles_deg(t))
        R = rot_z(heading) @ rot_x(obl) @ rot_y(lean)
        pos = np.zeros(t.shape + (3,))
        if self.exercise == "single-leg-squat":
            shape, _ = self._rep_profile(t)
            pos[..., 2] = -self.squat_depth_m * shape
        if self.sway:
            env = min_jerk((t - self.still_s) / 1.0)
            pos[..., 0] += env * 0.01 * np.sin(2 * np.pi * 0.3 * t)
        return R, pos
