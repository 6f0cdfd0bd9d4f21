"""Standing calibration: finds "level" and the pelvis axes in sensor coordinates.

In: per sample, the estimator's up vector in the sensor frame (`up_s`), the gyroscope (deg/s) and
accelerometer (g). Out, once the patient has stood still for `still_s`: `left_s`, `forward_s` and
`up_s` — unit vectors of the pelvis frame (docs/conventions.md) in sensor coordinates — and a
quality report. Level is *defined* as the posture held during that still period.

Without a functional movement the left-right axis cannot be observed, so it is taken from the
documented default mounting (sensor -x points left) and made horizontal: that removes any mounting
tilt about the forward and left axes; a belt turned about the vertical axis is not detected here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOMINAL_LEFT_S = np.array([-1.0, 0.0, 0.0])  # default mounting: sensor -x = patient's left


@dataclass
class CalibrationResult:
    left_s: np.ndarray
    forward_s: np.ndarray
    up_s: np.ndarray
    still_s: float
    mounting_tilt_deg: float  # angle between sensor +y and the true vertical

    def as_event(self) -> dict:
        return {"still_s": round(self.still_s, 2), "mounting_tilt_deg": round(self.mounting_tilt_deg, 2),
                "left_axis_sensor": [round(float(v), 4) for v in self.left_s],
                "up_axis_sensor": [round(float(v), 4) for v in self.up_s]}


class StandingCalibration:
    def __init__(self, rate_hz: float, still_s: float = 2.0, gyr_still_dps: float = 4.0,
                 acc_still_g: float = 0.03, nominal_left_s=NOMINAL_LEFT_S):
        self.needed = int(round(still_s * rate_hz))
        self.rate_hz = rate_hz
        self.gyr_still_dps = gyr_still_dps
        self.acc_still_g = acc_still_g
        self.nominal_left_s = np.asarray(nominal_left_s, float)
        self._sum = np.zeros(3)
        self._count = 0
        self.result: CalibrationResult | None = None

    def reset(self) -> None:
        self._sum[:] = 0.0
        self._count = 0
        self.result = None

    @property
    def progress(self) -> float:
        return min(1.0, self._count / self.needed)

    def update(self, up_s: np.ndarray, gyr_dps: np.ndarray, acc_g: np.ndarray) -> bool:
        """Feed one sample; True on the sample that completes the calibration."""
        if self.result is not None:
            return False
        still = (np.dot(gyr_dps, gyr_dps) < self.gyr_still_dps ** 2
                 and abs(np.sqrt(np.dot(acc_g, acc_g)) - 1.0) < self.acc_still_g)
        if not still:  # the still period must be unbroken
            self._sum[:] = 0.0
            self._count = 0
            return False
        self._sum += up_s
        self._count += 1
        if self._count < self.needed:
            return False
        up = self._sum / np.linalg.norm(self._sum)
        left = self.nominal_left_s - np.dot(self.nominal_left_s, up) * up
        left /= np.linalg.norm(left)
        forward = np.cross(left, up)  # pelvis frame: x forward = y(left) x z(up)
        tilt = np.degrees(np.arccos(np.clip(up[1], -1.0, 1.0)))
        self.result = CalibrationResult(left, forward, up, self._count / self.rate_hz, float(tilt))
        return True


def pelvis_angles_deg(cal: CalibrationResult, up_now_s: np.ndarray) -> tuple[float, float]:
    """(obliquity_deg, forward_tilt_deg) from the current up vector in sensor coordinates.
    Obliquity = elevation of the left axis (positive = left high); forward tilt = minus the elevation
    of the forward axis (positive = leaning forward)."""
    s_left = np.dot(cal.left_s, up_now_s)
    s_fwd = np.dot(cal.forward_s, up_now_s)
    return (float(np.degrees(np.arcsin(min(1.0, max(-1.0, s_left))))),
            float(-np.degrees(np.arcsin(min(1.0, max(-1.0, s_fwd))))))
