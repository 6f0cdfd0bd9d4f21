"""Kinematic model of the pelvis during the scripted exercises: the simulator's ground truth.

`Scenario` describes what the patient does (exercise, stance leg, per-rep drops, tempo). Its
`pelvis(t_s)` gives, for any array of true times, the pelvis orientation as rotation matrices
(pelvis frame -> earth frame, see docs/conventions.md) and the pelvis position in metres. The true
obliquity is exactly the scripted angle because the orientation is built as
R = Rz(heading) @ Rx(obliquity) @ Ry(forward lean): the left axis's elevation only depends on Rx.

Timeline (`phase_names(t)`): `still_s` standing still and level ("still"), then the guided
calibration movement the host asks for: `calibration_bends` slow forward bends ("bend", each
`bend_s` long, the pelvis tipping forward by `bend_deg` about its left axis and shifting back as in a
hip hinge) and `settle_s` standing still again ("settle"); then one rep after another ("rep"), then
`end_still_s` standing still ("end"). With `calibration_bends=0` the reps follow the first still
phase directly. A rep lowers the free side (opposite the stance leg) by its drop and brings it back
with minimum-jerk profiles; the single-leg squat also leans forward and lowers the pelvis, so the
accelerometer sees more than gravity.

The exercises added for issue 13: captain-morgan moves like the hip dip; fire-hydrant and
hip-swings (`swing` front-back, side or circles) turn the pelvis about the vertical with each lift or
swing of the free leg (SWING_YAW_DEG) while the free side drops by the rep's drop; lateral-step-down
lowers the pelvis by `step_depth_m` with a small forward lean and the drop; pelvic-tilt tips forward
by the rep's `tilt_deg`, holds, tilts back past level and returns (no drop); timed-hold is holds of
`hold_s` (a rep each) with `rest_s` after them, the drop as one dip in the middle of the hold.

Imperfections on request, for testing how the host copes: `bend_skews_deg` turns bend k's axis by
that angle (a diagonal bend, hips not square), `fidget_at_s` puts a one-second weight shift into
the first still phase.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXERCISES = ("stand", "hip-dip", "single-leg-squat", "captain-morgan", "fire-hydrant", "hip-swings",
             "lateral-step-down", "pelvic-tilt", "timed-hold")
SIDES = ("left", "right")
SWINGS = ("front-back", "side", "circles")
# Free-leg exercises: the pelvis turns about the vertical (yaw) with each lift or swing of the free
# leg, by this much at the top of the movement (degrees); the host counts reps from it.
SWING_YAW_DEG = {"fire-hydrant": 8.0, "front-back": 7.0, "side": 7.0, "circles": 7.0}


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
    sway: bool = True            # small natural sway after the first still phase (truth includes it)
    calibration_bends: int = 2   # slow forward bends after the still phase (the host's default asks for 2)
    bend_deg: float = 30.0       # how far the pelvis tips forward in each bend
    bend_s: float = 4.0          # one bend: down 35 %, hold 15 %, up 35 %, pause 15 %
    settle_s: float = 1.5        # standing still after the bends, before the first rep
    bend_skews_deg: list[float] = field(default_factory=list)  # per bend: axis turned by this (0 = straight)
    fidget_at_s: float | None = None  # a weight shift during the first still phase, starting here
    swing: str = "front-back"    # hip swings: front-back | side | circles
    step_depth_m: float = 0.15   # lateral step-down: how far the pelvis goes down
    step_lean_deg: float = 10.0  # lateral step-down: forward lean at the bottom
    tilt_deg: list[float] = field(default_factory=list)  # pelvic tilt: forward tilt per rep (default 12)
    hold_s: float = 8.0          # timed hold: one hold on one leg (then rest_s on both)
    rest_s: float = 4.0

    def __post_init__(self):
        if self.exercise not in EXERCISES:
            raise ValueError(f"unknown exercise {self.exercise!r}; choose from {', '.join(EXERCISES)}")
        if self.stance not in SIDES:
            raise ValueError(f"stance must be left or right, not {self.stance!r}")
        if self.rep_s <= 0.5:
            raise ValueError("a rep must last more than 0.5 s")
        if self.calibration_bends < 0:
            raise ValueError("the number of calibration bends must be 0 or more")
        if self.calibration_bends and not (0.0 <= self.bend_deg <= 90.0 and self.bend_s > 1.0):
            raise ValueError("a calibration bend goes 0-90 degrees forward and lasts more than 1 s")
        if self.swing not in SWINGS:
            raise ValueError(f"unknown swing {self.swing!r}; choose from {', '.join(SWINGS)}")
        self.drops_deg = [float(d) for d in self.drops_deg]
        self.bend_skews_deg = [float(d) for d in self.bend_skews_deg]
        self.tilt_deg = [float(d) for d in self.tilt_deg] or [12.0] * len(self.drops_deg)
        if self.exercise == "timed-hold":
            self.rep_s = self.hold_s + self.rest_s  # a "rep" is one hold and the rest after it

    @property
    def free_side(self) -> str:
        return "right" if self.stance == "left" else "left"

    @property
    def reps(self) -> int:
        return len(self.drops_deg)

    @property
    def bends_end_s(self) -> float:
        return self.still_s + self.calibration_bends * self.bend_s

    @property
    def reps_start_s(self) -> float:
        """End of the calibration phase (still, bends, settle): the first rep starts here."""
        return self.bends_end_s + (self.settle_s if self.calibration_bends else 0.0)

    @property
    def duration_s(self) -> float:
        return self.reps_start_s + self.reps * self.rep_s + self.end_still_s

    def rep_index(self, t_s: np.ndarray) -> np.ndarray:
        """Which rep each time falls in (-1 outside the reps)."""
        i = np.floor((np.asarray(t_s, float) - self.reps_start_s) / self.rep_s).astype(int)
        return np.where((i >= 0) & (i < self.reps), i, -1)

    def bend_index(self, t_s: np.ndarray) -> np.ndarray:
        """Which calibration bend each time falls in (-1 outside the bends)."""
        i = np.floor((np.asarray(t_s, float) - self.still_s) / self.bend_s).astype(int)
        return np.where((i >= 0) & (i < self.calibration_bends), i, -1)

    def phase_names(self, t_s) -> np.ndarray:
        """still | bend | settle | rep | end, per time (what the truth CSV's `phase` column says)."""
        t = np.asarray(t_s, float)
        conds = [t < self.still_s, t < self.bends_end_s, t < self.reps_start_s,
                 t < self.reps_start_s + self.reps * self.rep_s]
        return np.select(conds, ["still", "bend", "settle", "rep"], "end")

    def _bend_profile(self, t_s: np.ndarray):
        """(fraction of the bend 0..1, skew of that bend in deg) for each time."""
        i = self.bend_index(t_s)
        u = (t_s - self.still_s) / self.bend_s - i
        shape = np.where(u < 0.5, min_jerk(u / 0.35), 1.0 - min_jerk((u - 0.5) / 0.35))
        n = self.calibration_bends
        given = self.bend_skews_deg[:n]
        skews = np.asarray(given + [0.0] * (n - len(given)) + [0.0])  # index -1 -> the appended 0
        active = i >= 0
        return np.where(active, shape, 0.0), np.where(active, skews[i], 0.0)

    def _fidget_profile(self, t_s: np.ndarray) -> np.ndarray:
        if self.fidget_at_s is None:
            return np.zeros_like(t_s)
        u = t_s - self.fidget_at_s  # one second: shift over and back
        return np.where(u < 0.5, min_jerk(u / 0.5), 1.0 - min_jerk((u - 0.5) / 0.5))

    def _rep_profile(self, t_s: np.ndarray):
        """(fraction of the rep's excursion 0..1, drop of that rep in deg) for each time."""
        i = self.rep_index(t_s)
        u = (t_s - self.reps_start_s) / self.rep_s - i  # phase within the rep
        # down in 40% of the rep, hold 10%, back up in 35%, pause 15%
        shape = np.where(u < 0.5, min_jerk(u / 0.4), 1.0 - min_jerk((u - 0.5) / 0.35))
        drops = np.asarray(self.drops_deg + [0.0])[i]  # index -1 -> the appended 0
        active = i >= 0
        return np.where(active, shape, 0.0), np.where(active, drops, 0.0)

    def _phase(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rep index or -1, phase 0..1 within the rep) for each time."""
        i = self.rep_index(t_s)
        return i, (t_s - self.reps_start_s) / self.rep_s - i

    def _per_rep(self, values: list[float], i: np.ndarray) -> np.ndarray:
        return np.asarray(list(values) + [0.0])[i]  # index -1 -> the appended 0

    def _tilt_profile(self, t_s: np.ndarray) -> np.ndarray:
        """Pelvic tilt: forward in 20 % of the rep, hold 40 %, back past level to a small backward
        tilt (30 % of the forward one) in 15 %, hold it 15 %, back to level in 10 %."""
        i, u = self._phase(t_s)
        fwd = np.where(u < 0.6, min_jerk(u / 0.2), 1.0 - 1.3 * min_jerk((u - 0.6) / 0.15))
        fwd = np.where(u >= 0.9, -0.3 * (1.0 - min_jerk((u - 0.9) / 0.1)), fwd)
        return np.where(i >= 0, fwd * self._per_rep(self.tilt_deg, i), 0.0)

    def _hold_drop_profile(self, t_s: np.ndarray) -> np.ndarray:
        """Timed hold: 0..1, one dip of the free side in the middle of each hold (40-70 % of it)."""
        i, u = self._phase(t_s)
        v = u * self.rep_s / self.hold_s  # phase within the hold
        dip = np.where(v < 0.55, min_jerk((v - 0.4) / 0.15), 1.0 - min_jerk((v - 0.55) / 0.15))
        return np.where((i >= 0) & (v >= 0.4) & (v <= 0.7), dip, 0.0)

    def _swing_yaw_deg(self, t_s: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """Fire hydrant, hip swings: the pelvis turns with the free leg (toward the free side for a
        lift or a forward swing; a front-back swing turns one way and back the other way)."""
        kind = self.swing if self.exercise == "hip-swings" else "fire-hydrant"
        amp = SWING_YAW_DEG[kind]
        toward_free = 1.0 if self.free_side == "left" else -1.0  # +yaw turns the front to the left
        if kind == "front-back":
            i, u = self._phase(t_s)
            s = np.sin(2 * np.pi * np.clip(u / 0.85, 0.0, 1.0))
            return np.where(i >= 0, toward_free * amp * s, 0.0)
        return toward_free * amp * shape

    def angles_deg(self, t_s):
        """(obliquity_deg, forward_lean_deg, heading_deg) at true times t_s (seconds since start)."""
        t = np.asarray(t_s, dtype=float)
        shape, drops = self._rep_profile(t)
        if self.exercise == "stand":
            shape = np.zeros_like(t)
        # free side right low = left side high = positive obliquity
        sign = 1.0 if self.free_side == "right" else -1.0
        drop_shape = self._hold_drop_profile(t) if self.exercise == "timed-hold" else shape
        obliquity = sign * drops * drop_shape
        lean = np.zeros_like(t)
        if self.exercise == "single-leg-squat":
            lean = self.lean_deg * shape
        elif self.exercise == "lateral-step-down":
            lean = self.step_lean_deg * shape
        elif self.exercise == "pelvic-tilt":
            lean = self._tilt_profile(t)
            obliquity = np.zeros_like(t)
        heading = np.zeros_like(t)
        if self.exercise in ("fire-hydrant", "hip-swings"):
            heading = self._swing_yaw_deg(t, shape)
            if self.exercise == "hip-swings" and self.swing == "circles":
                lean = lean + 3.0 * np.sin(2 * np.pi * shape)
        if self.calibration_bends:
            # a bend tips the pelvis forward about an axis turned by `skew` from its left axis
            bend, skew = self._bend_profile(t)
            lean = lean + self.bend_deg * bend * np.cos(np.radians(skew))
            obliquity = obliquity + self.bend_deg * bend * np.sin(np.radians(skew))
        if self.fidget_at_s is not None:
            f = self._fidget_profile(t)
            obliquity, lean = obliquity + 3.0 * f, lean + 4.0 * f
        if self.sway:
            env = min_jerk((t - self.still_s) / 1.0)  # sway starts after the first still phase
            obliquity = obliquity + env * (0.25 * np.sin(2 * np.pi * 0.23 * t)
                                           + 0.15 * np.sin(2 * np.pi * 0.61 * t + 1.0))
            lean = lean + env * 0.8 * np.sin(2 * np.pi * 0.17 * t + 0.3)
            # the pelvis's slow turning sway; standing on one leg to move the other it is smaller
            # than the turn a lift or swing gives (SWING_YAW_DEG)
            yaw_sway = 1.0 if self.exercise in ("fire-hydrant", "hip-swings") else 3.0
            heading = heading + env * yaw_sway * np.sin(2 * np.pi * 0.11 * t)
        return obliquity, lean, heading

    def pelvis(self, t_s):
        """(R_pelvis_to_earth (n,3,3), position_m (n,3)) at true times t_s."""
        t = np.asarray(t_s, dtype=float)
        obl, lean, heading = (np.radians(a) for a in self.angles_deg(t))
        R = rot_z(heading) @ rot_x(obl) @ rot_y(lean)
        pos = np.zeros(t.shape + (3,))
        if self.exercise in ("single-leg-squat", "lateral-step-down"):
            shape, _ = self._rep_profile(t)
            depth = self.squat_depth_m if self.exercise == "single-leg-squat" else self.step_depth_m
            pos[..., 2] = -depth * shape
        if self.calibration_bends:
            bend, _ = self._bend_profile(t)  # hip hinge: the pelvis moves back and a little down
            pos[..., 0] -= 0.08 * bend
            pos[..., 2] -= 0.03 * bend
        if self.sway:
            env = min_jerk((t - self.still_s) / 1.0)
            pos[..., 0] += env * 0.01 * np.sin(2 * np.pi * 0.3 * t)
        return R, pos
