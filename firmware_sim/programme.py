"""The simulated patient following a programme (`hiplevel sim --programme FILE`): the truth for
`hiplevel today` tests.

In: a programme (host.session.programme, the same TOML the therapist stores) and which of its steps
to perform. Out: a scenario with the same interface as `motion.Scenario` (pelvis, angles_deg,
rep_index, phase_names, duration_s) for `SimDevice`: the calibration (still, two slow forward bends,
settle), then each step's reps (or hold) on its stance leg, each followed by standing still for the
step's rest plus `REST_SLACK_S` (the host's rest timer ends first, as a patient waits for "go").
Hip dips go 2 deg past the target; single-leg squats alternate 2.5 deg inside and 2 deg past the
limit (every other rep a fault); keep-level stands with sway. An exercise this module does not know
moves like the hip dip. Sway is added over the whole timeline so segments join without a jump.
"""
from __future__ import annotations

import numpy as np

from .motion import Scenario, min_jerk, rot_x, rot_y, rot_z

REST_SLACK_S = 2.5
END_S = 3.0


def _step_scenario(step, rep_s: float) -> Scenario:
    cfg = step.cfg
    thr = cfg.threshold_deg
    tail = step.rest_s + REST_SLACK_S
    if step.hold_s or cfg.exercise == "keep-level":
        return Scenario(exercise="stand", stance=step.stance, drops_deg=[], still_s=0.0, sway=False,
                        calibration_bends=0, end_still_s=step.hold_s + tail)
    if cfg.exercise == "single-leg-squat":
        drops = [max(0.5, thr - 2.5) if i % 2 == 0 else thr + 2.0 for i in range(step.reps)]
        exercise = "single-leg-squat"
    else:
        drops, exercise = [thr + 2.0] * step.reps, "hip-dip"
    return Scenario(exercise=exercise, stance=step.stance, drops_deg=drops, rep_s=rep_s, still_s=0.0,
                    sway=False, calibration_bends=0, end_still_s=tail)


class ProgrammeScenario:
    def __init__(self, steps, rep_s: float = 3.5, calibration_bends: int = 2):
        first = Scenario(exercise="stand", drops_deg=[], calibration_bends=calibration_bends, sway=False,
                         end_still_s=0.0)
        self.still_s = first.still_s
        self.segments = [(0.0, first)]
        t = first.duration_s
        for step in steps:
            sc = _step_scenario(step, rep_s)
            self.segments.append((t, sc))
            t += sc.duration_s
        self.duration_s = t + END_S
        self.rep_offsets = np.cumsum([0] + [sc.reps for _, sc in self.segments])[:-1]

    def _split(self, t):
        starts = np.array([t0 for t0, _ in self.segments])
        return np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(self.segments) - 1)

    def _each(self, t, fn):
        t = np.asarray(t, float)
        seg = self._split(t)
        outs = None
        for k, (t0, sc) in enumerate(self.segments):
            m = seg == k
            if not np.any(m):
                continue
            part = fn(k, sc, t[m] - t0)
            if outs is None:
                outs = [np.zeros(t.shape + np.shape(p)[1:], dtype=np.asarray(p).dtype) for p in part]
            for o, p in zip(outs, part):
                o[m] = p
        return outs

    def angles_deg(self, t_s):
        t = np.asarray(t_s, float)
        obl, lean, heading = self._each(t, lambda k, sc, u: sc.angles_deg(u))
        env = min_jerk((t - self.still_s) / 1.0)  # the same natural sway as motion.Scenario
        obl = obl + env * (0.25 * np.sin(2 * np.pi * 0.23 * t) + 0.15 * np.sin(2 * np.pi * 0.61 * t + 1.0))
        lean = lean + env * 0.8 * np.sin(2 * np.pi * 0.17 * t + 0.3)
        heading = heading + env * 3.0 * np.sin(2 * np.pi * 0.11 * t)
        return obl, lean, heading

    def pelvis(self, t_s):
        t = np.asarray(t_s, float)
        obl, lean, heading = (np.radians(a) for a in self.angles_deg(t))
        (pos,) = self._each(t, lambda k, sc, u: (sc.pelvis(u)[1],))
        pos = pos + (min_jerk((t - self.still_s) / 1.0) * 0.01 * np.sin(2 * np.pi * 0.3 * t))[..., None] * [1, 0, 0]
        return rot_z(heading) @ rot_x(obl) @ rot_y(lean), pos

    def rep_index(self, t_s):
        (i,) = self._each(t_s, lambda k, sc, u: (np.where(sc.rep_index(u) >= 0, sc.rep_index(u) + self.rep_offsets[k], -1),))
        return i

    def phase_names(self, t_s):
        def names(k, sc, u):
            p = sc.phase_names(u)
            return (np.where(p == "end", "rest", p).astype("<U8"),) if k else (p.astype("<U8"),)
        (p,) = self._each(t_s, names)
        return np.where(np.asarray(t_s) >= self.duration_s - END_S, "end", p)


def programme_scenario(path: str, from_step: int = 0, n_steps: int | None = None, rep_s: float = 3.5,
                       calibration_bends: int = 2) -> ProgrammeScenario:
    """The scenario of steps from_step.. (n_steps of them, default all) of the programme in `path`."""
    from host.session import programme as pg
    with open(path, encoding="utf-8") as f:
        steps = pg.steps(pg.from_toml(f.read()))
    chosen = steps[from_step:] if n_steps is None else steps[from_step:from_step + n_steps]
    if not chosen:
        raise ValueError(f"the programme has {len(steps)} steps; none from step {from_step}")
    return ProgrammeScenario(chosen, rep_s=rep_s, calibration_bends=calibration_bends)
