"""Walking calibration (`--calibration walk`, implied by `--exercise walk`): level from standing
still, the left-right axis from the first steps. No bends.

In: the same per-sample `update(t_s, gyr_dps, acc_g)` as host.processing.calibration's methods
(device seconds, sensor frame); out: CALIBRATED / FAILED / None, `result`, `failure`, `prompt`,
`progress`, `gyr_bias_dps`, `levelled`, exactly like them (docs/calibration.md).

How: the still phase gives up (mean accelerometer direction) and the gyro bias. Then the user walks
straight ahead. Walking shakes the pelvis most along the walking direction (forward-backward
acceleration at twice the stride frequency, larger than the side-to-side sway), so the principal
direction of the horizontal acceleration (band-passed 0.5-3 Hz) over the first `steps` steps is the
forward-backward axis, whatever the belt's position and tilt. Which way is forward: in the
inverted-pendulum motion of walking the trunk is fastest at its lowest point, so the forward
acceleration goes with the rise of the vertical acceleration (positive correlation with its time
derivative); the sign of that correlation picks forward. Left = up x forward.

Quality: the axes found from the first and the second half of the steps (`walk_agreement_deg`), and
how clearly one direction dominates (`walk_axis_ratio`: variance along the axis over the variance
across it). Agreement within 10 deg is good, within 30 deg fair, more is refused (walking did not go
straight, or a turn came too early); a ratio under 1.3 is refused (no clear direction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter

from host.processing.calibration import (CALIBRATED, CalibrationResult, StandingCalibration, _angle_deg,
                                         _horizontal, _mounting, _StillPhase, _unit)
from host.processing.gait import Biquads, ContactDetector


@dataclass
class WalkCalibrationResult(CalibrationResult):
    walk_steps: int = 0
    walk_agreement_deg: float | None = None
    walk_axis_ratio: float | None = None
    walk_started_s: float | None = None   # first contact of the calibration walk (device s)

    def as_event(self) -> dict:
        out = super().as_event()
        out.update(walk_steps=self.walk_steps, walk_agreement_deg=round(self.walk_agreement_deg, 2),
                   walk_axis_ratio=round(self.walk_axis_ratio, 2))
        return out

    def summary(self) -> str:
        return (f"Calibrated: {self.quality} (walking direction from {self.walk_steps} steps, "
                f"repeatable within {self.walk_agreement_deg:.0f}°).")


class WalkCalibration(StandingCalibration):
    method = "walk"
    WALK_PROMPT = "Walk straight ahead at your usual pace…"

    def __init__(self, rate_hz: float, still_s: float = 1.5, steps: int = 8, skip_steps: int = 2,
                 good_deg: float = 10.0, max_disagree_deg: float = 30.0, min_ratio: float = 1.3,
                 wait_s: float = 30.0):
        self.steps, self.skip_steps = steps, skip_steps
        self.good_deg, self.max_disagree_deg = good_deg, max_disagree_deg
        self.min_ratio, self.wait_s = min_ratio, wait_s
        super().__init__(rate_hz, still_s)
        # Standing before a walk is rarely as still as before an exercise: a wider still window
        # (people sway and shift their weight: on the IPOL trials up to 16 deg/s before walking off).
        self._still = _StillPhase(rate_hz, still_s, gyr_dev_dps=10.0, acc_dev_g=0.1, wander_deg=3.0)
        self._still_share = 0.4

    def _restart(self) -> None:
        super()._restart()
        self._contacts = []

    def _still_done(self, t_s: float, gyr_dps) -> str | None:
        self._phase = "walk"
        self._wait_since = t_s
        self.failure = None
        self.prompt = self.WALK_PROMPT
        self.progress = self._still_share
        self._detector = ContactDetector(self.rate_hz)
        sos = butter(2, [0.5, 3.0], btype="band", fs=self.rate_hz, output="sos")
        self._bp = [Biquads(sos) for _ in range(3)]
        self._cov = [np.zeros((3, 3)), np.zeros((3, 3))]   # first and second half of the steps
        self._corr = np.zeros(3)
        self._v_prev = None
        self._contacts = []
        return None

    def _update_after_still(self, t_s, gyr_dps, acc_g) -> str | None:
        up = self.up_cal
        a = [self._bp[i].step(float(acc_g[i])) for i in range(3)]
        v = a[0] * up[0] + a[1] * up[1] + a[2] * up[2]
        h = np.array([a[0] - v * up[0], a[1] - v * up[1], a[2] - v * up[2]])
        dv = 0.0 if self._v_prev is None else (v - self._v_prev) * self.rate_hz
        self._v_prev = v
        t_contact = self._detector.update(t_s, float(np.dot(acc_g, up)) - 1.0)
        if t_contact is not None:
            self._contacts.append(t_contact)
        # the first steps from standing (gait initiation) sway more sideways than walking does
        n = len(self._contacts) - self.skip_steps
        if n <= 0:
            if t_s - self._wait_since > self.wait_s:
                return self._fail("timeout", f"No walking seen in {self.wait_s:.0f} s.")
            return None
        half = 0 if n <= (self.steps + 1) // 2 else 1
        self._cov[half] += np.outer(h, h)
        self._corr += h * dv
        self.progress = self._still_share + (1 - self._still_share) * min(1.0, (n - 1) / self.steps)
        if n - 1 >= self.steps:
            return self._compute()
        if t_s - self._wait_since > self.wait_s:
            return self._fail("timeout", f"Only {n - 1} of {self.steps} steps seen in {self.wait_s:.0f} s.")
        return None

    def _axis(self, cov: np.ndarray) -> tuple[np.ndarray, float]:
        up = self.up_cal
        # project onto the horizontal plane, then the principal direction there
        P = np.eye(3) - np.outer(up, up)
        c = P @ cov @ P
        vals, vecs = np.linalg.eigh(c)
        return _unit(_horizontal(vecs[:, -1], up)), float(vals[-1] / max(vals[-2], 1e-12))

    def _compute(self) -> str:
        up = self.up_cal
        fwd, ratio = self._axis(self._cov[0] + self._cov[1])
        if float(np.dot(fwd, self._corr)) < 0:
            fwd = -fwd
        a0, _ = self._axis(self._cov[0])
        a1, _ = self._axis(self._cov[1])
        # axes are lines: the angle between them is at most 90 degrees
        agreement = min(_angle_deg(a0, a1), _angle_deg(a0, -a1))
        if ratio < self.min_ratio:
            return self._fail("no_walking_direction",
                              "Your steps showed no clear walking direction: walk straight ahead.")
        if agreement > self.max_disagree_deg:
            return self._fail("walk_not_straight",
                              f"The walking direction changed by {agreement:.0f}° during the first steps: "
                              "walk straight ahead.")
        left = _unit(np.cross(up, fwd))
        tilt, yaw = _mounting(up, left)
        quality = "good" if agreement <= self.good_deg else "fair"
        self._finish(WalkCalibrationResult(left, fwd, up, self.method, self.still_held_s, tilt, yaw,
                                           quality=quality, walk_steps=self.steps,
                                           walk_agreement_deg=agreement, walk_axis_ratio=ratio,
                                           walk_started_s=self._contacts[self.skip_steps]))
        return CALIBRATED
