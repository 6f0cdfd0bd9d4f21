"""Mounting calibration: finds "level" and the pelvis's axes in sensor coordinates, guiding the user.

In: per sample, `update(t_s, gyr_dps, acc_g)`: device time (s, from the device's timestamps, so a
lost frame shows as a longer step), the gyroscope (deg/s) and the accelerometer (g). Out: `update`
returns CALIBRATED on the sample that completes the calibration (then `result` holds a
`CalibrationResult`: unit vectors of the pelvis frame in sensor coordinates, see
docs/conventions.md, and quality numbers), FAILED on a sample that made it refuse (then `failure`
says why, in a key and in words, and the procedure has already started again), else None. `prompt`
is the sentence to show the user now, `progress` runs 0..1. Each completed still phase also
measures the gyroscope's bias (`gyr_bias_dps`, counted by `levelled`).

Two methods (docs/calibration.md explains them for users):
- "bends" (default): stand still (this posture *defines* level: up_s is the mean accelerometer
  direction, and the mean gyroscope reading is its bias), then two slow forward bends. A forward bend
  turns the pelvis about its own left axis (conventions: forward lean is a positive rotation about
  +left), so the earth's up, seen from the sensor, turns the other way about that same axis: each
  sample's -(up_cal x up_t) points along left_s, with length sin(bend angle). Their sum over both
  bends is the left axis, perpendicular to up_cal by construction; how much the per-sample
  directions scatter and how well the two bends agree is the quality. This works for any belt
  position (sacrum to the side of the pelvis) and any tilt on the belt: nothing about the mounting
  is assumed.
- "standing": the still phase only; the left axis is the default mounting's (sensor -x) made
  horizontal. Quick, but a belt turned toward the side mixes forward lean into obliquity.

Why not the orientation estimator's up vector: until the estimator has learnt the gyro bias (VQF
needs several seconds of rest and motion) its up vector is off by a few tenths of a degree, which
would become a lasting obliquity offset and a turned axis. So level comes from the accelerometer at
rest (where the estimator converges to), and during the bends up_t is the level up vector carried
along by the bias-corrected gyroscope alone: over ten seconds that drifts by hundredths of a
degree, and linear acceleration in the bend does not touch it.

Refusals (reason keys in CalibrationFailure): moved_during_still, bend_too_small, bends_inconsistent,
backward_bend, timeout, bend_too_long, not_back_to_start, signal_gap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NOMINAL_LEFT_S = np.array([-1.0, 0.0, 0.0])     # default mounting: sensor -x = patient's left
NOMINAL_FORWARD_S = np.array([0.0, 0.0, -1.0])  # and sensor -z = forward
METHODS = ("bends", "standing", "walk")  # walk: host.processing.walk_calibration
DEFAULT_METHOD = "bends"
CALIBRATED, FAILED = "calibrated", "failed"


@dataclass(frozen=True)
class CalibrationFailure:
    reason: str   # stable key, for logs and tests
    message: str  # one or two plain sentences for the user


@dataclass
class CalibrationResult:
    left_s: np.ndarray
    forward_s: np.ndarray
    up_s: np.ndarray
    method: str
    still_s: float
    mounting_tilt_deg: float   # angle between sensor +y and the true vertical
    mounting_yaw_deg: float    # belt turned from the default mounting about the vertical, + = toward the left
    bends_deg: list[float] = field(default_factory=list)  # how far each bend went
    axis_spread_deg: float | None = None     # weighted RMS scatter of the per-sample axis directions
    bend_agreement_deg: float | None = None  # largest angle between the axes of the separate bends
    return_deg: float | None = None          # posture after the bends against the first still phase
    quality: str = "assumed"                 # good | fair (bends) | assumed (standing: axis not measured)

    def as_event(self) -> dict:
        r = lambda v: None if v is None else round(float(v), 2)
        return {"method": self.method, "quality": self.quality, "still_s": round(self.still_s, 2),
                "mounting_tilt_deg": r(self.mounting_tilt_deg), "mounting_yaw_deg": r(self.mounting_yaw_deg),
                "bends_deg": [r(b) for b in self.bends_deg], "axis_spread_deg": r(self.axis_spread_deg),
                "bend_agreement_deg": r(self.bend_agreement_deg), "return_deg": r(self.return_deg),
                "left_axis_sensor": [round(float(v), 4) for v in self.left_s],
                "up_axis_sensor": [round(float(v), 4) for v in self.up_s]}

    def summary(self) -> str:
        """One line for the user, e.g. 'Calibrated: good (bends 30° and 31°, axis repeatable within 0.4°).'"""
        if self.method == "standing":
            return "Calibrated (standing only: the belt is assumed to sit square over the sacrum)."
        bends = " and ".join(f"{b:.0f}°" for b in self.bends_deg)
        return (f"Calibrated: {self.quality} (bends {bends}, axis repeatable within "
                f"{max(self.bend_agreement_deg, 0.05):.1f}°).")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(np.linalg.norm(np.cross(a, b)), float(np.dot(a, b))))


def _horizontal(v: np.ndarray, up: np.ndarray) -> np.ndarray:
    return v - np.dot(v, up) * up


def _mounting(up: np.ndarray, left: np.ndarray) -> tuple[float, float]:
    """(tilt, yaw) of the mounting in degrees, from the default one (docs/conventions.md)."""
    tilt = math.degrees(math.acos(min(1.0, max(-1.0, float(up[1])))))
    n_left, n_fwd = _horizontal(NOMINAL_LEFT_S, up), _horizontal(NOMINAL_FORWARD_S, up)
    # a belt turned by yaw toward the left: left_s = cos(yaw) nominal left + sin(yaw) nominal forward
    yaw = math.degrees(math.atan2(float(np.dot(left, n_fwd)), float(np.dot(left, n_left))))
    return tilt, yaw


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _rotate(v, rotvec):
    """v turned by the rotation vector `rotvec` (radians; Rodrigues), as plain floats."""
    angle = math.sqrt(rotvec[0] ** 2 + rotvec[1] ** 2 + rotvec[2] ** 2)
    if angle < 1e-12:
        return v
    k = (rotvec[0] / angle, rotvec[1] / angle, rotvec[2] / angle)
    c, s = math.cos(angle), math.sin(angle)
    kv = k[0] * v[0] + k[1] * v[1] + k[2] * v[2]
    kxv = _cross(k, v)
    return tuple(v[i] * c + kxv[i] * s + k[i] * kv * (1.0 - c) for i in range(3))


class _StillPhase:
    """Unbroken stillness for `need_s`: the gyroscope and accelerometer stay within a threshold of
    their low-passed values (so a constant gyro bias does not count as movement) and the low-passed
    accelerometer direction stays within `wander_deg` of where it started (so a slow lean does).
    Gives the mean accelerometer direction (`up`) and the mean gyroscope reading (`gyr_bias_dps`)."""

    def __init__(self, rate_hz: float, need_s: float, gyr_dev_dps: float = 3.0, acc_dev_g: float = 0.05,
                 wander_deg: float = 1.5, tau_s: float = 0.3):
        self.need_s = need_s
        self._alpha = 1.0 - math.exp(-1.0 / (rate_hz * tau_s))
        self._gyr2, self._acc2 = gyr_dev_dps ** 2, acc_dev_g ** 2
        self._cos_wander = math.cos(math.radians(wander_deg))
        self._lp_gyr = self._lp_acc = None
        self.restart()

    def restart(self) -> None:
        self.t_start = None
        self._anchor = None
        self._acc_sum = np.zeros(3)
        self._gyr_sum = np.zeros(3)
        self.samples = 0

    def held_s(self, t_s: float) -> float:
        return 0.0 if self.t_start is None else t_s - self.t_start

    @property
    def up(self) -> np.ndarray:
        return _unit(self._acc_sum)

    @property
    def gyr_bias_dps(self) -> np.ndarray:
        return self._gyr_sum / max(1, self.samples)

    def update(self, t_s: float, gyr_dps, acc_g) -> bool:
        """True while still (and the sample counts); False on movement, which restarts the window."""
        if self._lp_gyr is None:
            self._lp_gyr, self._lp_acc = np.array(gyr_dps, float), np.array(acc_g, float)
        dg, da = gyr_dps - self._lp_gyr, acc_g - self._lp_acc
        self._lp_gyr += self._alpha * dg
        self._lp_acc += self._alpha * da
        still = float(np.dot(dg, dg)) < self._gyr2 and float(np.dot(da, da)) < self._acc2
        if still and self._anchor is not None:
            lp = self._lp_acc
            still = float(np.dot(lp, self._anchor)) > self._cos_wander * math.sqrt(float(np.dot(lp, lp)))
        if not still:
            self.restart()
            return False
        if self._anchor is None:
            self.t_start, self._anchor = t_s, _unit(self._lp_acc)
        self._acc_sum += acc_g
        self._gyr_sum += gyr_dps
        self.samples += 1
        return True

    def done(self, t_s: float) -> bool:
        return self.held_s(t_s) >= self.need_s


class StandingCalibration:
    """Still phase only; the left axis comes from the default mounting (see the module docstring)."""
    method = "standing"
    STILL_PROMPT = "Stand still and level to calibrate…"

    def __init__(self, rate_hz: float, still_s: float = 2.0, nominal_left_s=NOMINAL_LEFT_S):
        self.rate_hz = rate_hz
        self.still_s = still_s
        self.nominal_left_s = np.asarray(nominal_left_s, float)
        self._still = _StillPhase(rate_hz, still_s)
        self.result: CalibrationResult | None = None
        self.failure: CalibrationFailure | None = None
        self.prompt = self.STILL_PROMPT
        self.progress = 0.0
        # Each completed still phase measures the gyro bias (the user is at rest): the pipeline
        # watches `levelled` and restarts its estimator on bias-corrected gyro data from there.
        self.gyr_bias_dps = np.zeros(3)
        self.levelled = 0
        self._still_share = 0.4 if self.method == "bends" else 1.0  # of the whole procedure's progress
        self._restart()

    def reset(self) -> None:
        """Start again from the still phase (the user asked to recalibrate)."""
        self.result = None
        self.failure = None
        self.prompt = self.STILL_PROMPT
        self._restart()

    def _restart(self) -> None:
        self._phase = "still"
        self._still.restart()
        self.progress = 0.0

    def _fail(self, reason: str, message: str) -> str:
        self.failure = CalibrationFailure(reason, message)
        self.prompt = f"{message} Stand still and level to start again…"
        self._restart()
        return FAILED

    def update(self, t_s: float, gyr_dps: np.ndarray, acc_g: np.ndarray) -> str | None:
        """One sample: device time (s), gyroscope (deg/s), accelerometer (g), sensor frame."""
        if self.result is not None:
            return None
        if self._phase == "still":
            return self._update_still(t_s, gyr_dps, acc_g)
        return self._update_after_still(t_s, gyr_dps, acc_g)

    def _update_still(self, t_s, gyr_dps, acc_g) -> str | None:
        held = self._still.held_s(t_s)
        if not self._still.update(t_s, gyr_dps, acc_g):
            self.progress = 0.0
            # Only a still phase well under way is refused out loud; before that the user is
            # still getting ready.
            if held >= 0.5 * self.still_s:
                return self._fail("moved_during_still",
                                  f"You moved after {held:.1f} s of the {self.still_s:g} s still phase.")
            return None
        self.progress = self._still_share * min(1.0, self._still.held_s(t_s) / self.still_s)
        if self._still.done(t_s):
            self.up_cal = self._still.up
            self.gyr_bias_dps = self._still.gyr_bias_dps
            self.levelled += 1
            self.still_held_s = self._still.held_s(t_s) + 1.0 / self.rate_hz
            return self._still_done(t_s, gyr_dps)
        return None

    def _still_done(self, t_s: float, gyr_dps) -> str | None:
        up = self.up_cal
        left = _unit(_horizontal(self.nominal_left_s, up))
        tilt, yaw = _mounting(up, left)
        self._finish(CalibrationResult(left, np.cross(left, up), up, self.method, self.still_held_s, tilt, yaw))
        return CALIBRATED

    def _finish(self, result: CalibrationResult) -> None:
        self.result = result
        self.failure = None
        self.progress = 1.0
        self.prompt = result.summary()

    def _update_after_still(self, t_s, gyr_dps, acc_g) -> str | None:
        raise AssertionError("the standing calibration ends with its still phase")


class BendCalibration(StandingCalibration):
    """Still phase, then `bends` slow forward bends, then a short still (see the module docstring)."""
    method = "bends"

    def __init__(self, rate_hz: float, still_s: float = 2.0, bends: int = 2, min_bend_deg: float = 15.0,
                 start_deg: float = 5.0, end_deg: float = 3.0, max_disagree_deg: float = 4.0,
                 good_deg: float = 1.5, wait_s: float = 30.0, max_bend_s: float = 20.0,
                 settle_s: float = 0.5, max_return_deg: float = 3.0, max_gap_s: float = 0.25):
        if bends < 1:
            raise ValueError("the bend calibration needs at least one bend")
        self.bends = bends
        self.min_bend_deg, self.start_deg, self.end_deg = min_bend_deg, start_deg, end_deg
        self.max_disagree_deg, self.good_deg = max_disagree_deg, good_deg
        self.wait_s, self.max_bend_s = wait_s, max_bend_s
        self.max_return_deg, self.max_gap_s = max_return_deg, max_gap_s
        self._settle = _StillPhase(rate_hz, settle_s)
        super().__init__(rate_hz, still_s)

    def _restart(self) -> None:
        super()._restart()
        self._done_bends = []  # per bend: (peak_deg, axis sum, [per-sample axis vectors])
        self._in_bend = False

    def _bend_prompt(self) -> str:
        return (f"Bend forward slowly from the hips, then come back up "
                f"({len(self._done_bends) + 1} of {self.bends})…")

    def _still_done(self, t_s: float, gyr_dps) -> str | None:
        self._phase = "bends"
        self._wait_since = t_s
        self.failure = None
        self.prompt = self._bend_prompt()
        self.progress = self._still_share
        # up as seen by the sensor, carried along by the gyroscope from the level posture
        self._up = tuple(float(v) for v in self.up_cal)
        self._t_prev = t_s
        self._w_prev = gyr_dps - self.gyr_bias_dps
        return None

    def _update_after_still(self, t_s, gyr_dps, acc_g) -> str | None:
        if self._phase == "bends":
            dt = t_s - self._t_prev
            if not 0.0 < dt <= self.max_gap_s:
                return self._fail("signal_gap", f"The sensor's data stopped for {dt:.1f} s during the bends.")
            w = gyr_dps - self.gyr_bias_dps
            # a fixed earth vector seen from the sensor turns by -omega; trapezoid rule, so a few
            # lost samples (a longer dt) are bridged by the mean rate
            step = -0.5 * dt * math.pi / 180.0
            self._up = _rotate(self._up, ((w[0] + self._w_prev[0]) * step, (w[1] + self._w_prev[1]) * step,
                                          (w[2] + self._w_prev[2]) * step))
            self._t_prev, self._w_prev = t_s, w
            return self._update_bends(t_s, self._up)
        return self._update_settle(t_s, gyr_dps, acc_g)

    def _update_bends(self, t_s: float, up_t) -> str | None:
        c = _cross(self.up_cal, up_t)
        sin_a = math.sqrt(c[0] ** 2 + c[1] ** 2 + c[2] ** 2)
        cos_a = float(self.up_cal[0] * up_t[0] + self.up_cal[1] * up_t[1] + self.up_cal[2] * up_t[2])
        angle = math.degrees(math.atan2(sin_a, cos_a))
        n_done = len(self._done_bends)
        if not self._in_bend:
            if angle > self.start_deg:
                self._in_bend, self._bend_t0, self._peak = True, t_s, angle
                self._axis_samples = []
            elif t_s - self._wait_since > self.wait_s:
                seen = f"Only {n_done} of {self.bends} bends" if n_done else "No bend"
                return self._fail("timeout", f"{seen} seen in {self.wait_s:.0f} s.")
            else:
                return None
        self._peak = max(self._peak, angle)
        if angle > self.start_deg:
            # the up vector turns the opposite way to the pelvis: minus the cross product points left
            self._axis_samples.append((-c[0], -c[1], -c[2]))
        if angle < self.end_deg:
            self._in_bend = False
            if self._peak < self.min_bend_deg:
                return self._fail("bend_too_small",
                                  f"That bend reached {self._peak:.0f}°; bend further, at least "
                                  f"{self.min_bend_deg:.0f}°.")
            samples = np.array(self._axis_samples)
            self._done_bends.append((self._peak, samples.sum(axis=0), samples))
            self._wait_since = t_s
            if len(self._done_bends) == self.bends:
                self._phase = "settle"
                self._settle.restart()
                self.prompt = "Stand still…"
            else:
                self.prompt = self._bend_prompt()
        elif t_s - self._bend_t0 > self.max_bend_s:
            return self._fail("bend_too_long", "That bend did not come back up within "
                              f"{self.max_bend_s:.0f} s.")
        done = len(self._done_bends)
        share = (done + (0.5 * min(1.0, self._peak / self.min_bend_deg) if self._in_bend else 0.0)) / self.bends
        self.progress = self._still_share + 0.5 * share
        return None

    def _update_settle(self, t_s, gyr_dps, acc_g) -> str | None:
        if not self._settle.update(t_s, gyr_dps, acc_g) and t_s - self._wait_since > self.wait_s:
            return self._fail("timeout", f"You did not stand still within {self.wait_s:.0f} s after the bends.")
        # (a restarted settle window does not move the bar back)
        self.progress = max(self.progress, 0.9 + 0.1 * min(1.0, self._settle.held_s(t_s) / self._settle.need_s))
        if not self._settle.done(t_s):
            return None
        return self._compute(self._settle.up)

    def _compute(self, up_end: np.ndarray) -> str:
        up = self.up_cal
        return_deg = _angle_deg(up_end, up)
        if return_deg > self.max_return_deg:
            return self._fail("not_back_to_start",
                              f"You stood {return_deg:.0f}° differently after the bends than before "
                              "(or the belt slipped).")
        total = sum(b[1] for b in self._done_bends)
        left = _unit(_horizontal(total, up))
        axes = [_unit(_horizontal(b[1], up)) for b in self._done_bends]
        agreement = max((_angle_deg(a, b) for i, a in enumerate(axes) for b in axes[i + 1:]), default=0.0)
        samples = np.concatenate([b[2] for b in self._done_bends])
        weights = np.linalg.norm(samples, axis=1)  # sin(bend angle): deeper samples say more
        # signed angle of each sample's direction from the axis, about up
        psi = np.arctan2(samples @ np.cross(up, left), samples @ left)
        spread = math.degrees(math.sqrt(float(np.sum(weights * psi ** 2) / np.sum(weights))))
        nominal = _horizontal(NOMINAL_LEFT_S, up)
        # A belt anywhere from the sacrum to the side (yaw -90..90, tilt up to 20) puts the left axis
        # within ~95° of the default's; beyond 110° the bend went backward and left and right would
        # come out swapped. (With the belt at the side, |yaw| > 70°, this cannot be told apart.)
        if np.linalg.norm(nominal) > 0.5 and _angle_deg(left, nominal) > 110.0:
            return self._fail("backward_bend", "That looked like bending backward; bend forward.")
        if agreement > self.max_disagree_deg:
            return self._fail("bends_inconsistent",
                              f"The bends went in different directions ({agreement:.1f}° apart, "
                              f"at most {self.max_disagree_deg:g}° allowed): keep the hips square and "
                              "bend straight forward.")
        if spread > 2 * self.max_disagree_deg:
            return self._fail("bends_inconsistent",
                              f"The bends twisted on the way (direction wandered {spread:.0f}°): keep the "
                              "hips square and bend straight forward.")
        tilt, yaw = _mounting(up, left)
        quality = "good" if agreement <= self.good_deg and spread <= 2 * self.good_deg else "fair"
        self._finish(CalibrationResult(left, np.cross(left, up), up, self.method, self.still_held_s,
                                       tilt, yaw, [b[0] for b in self._done_bends], spread, agreement,
                                       return_deg, quality))
        return CALIBRATED


def make_calibration(method: str, rate_hz: float, still_s: float = 2.0):
    if method == "bends":
        return BendCalibration(rate_hz, still_s)
    if method == "standing":
        return StandingCalibration(rate_hz, still_s)
    if method == "walk":
        from host.processing.walk_calibration import WalkCalibration
        # walking trials often start after a short stand: 1.5 s is enough for level and the gyro bias
        return WalkCalibration(rate_hz, min(still_s, 1.5))
    raise ValueError(f"unknown calibration {method!r}; choose from {', '.join(METHODS)}")
