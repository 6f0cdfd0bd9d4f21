"""Orientation estimators: gyroscope + accelerometer samples in, orientation quaternion out.

Input per sample: `update(gyr_dps, acc_g)`, gyr_dps (3,) deg/s and acc_g (3,) g, sensor frame, at the
fixed rate given to the constructor (dt comes from the device's sample clock). Output: `quat_wxyz`,
w-x-y-z, rotating sensor frame to earth frame (z up), and `resting` (the sensor is still). Each library
wants its own units, rate and frame; conversion happens here and nowhere else. Heading is arbitrary
(6D fusion): only the vertical is meaningful.

Estimators with `live = False` look at future samples (non-causal) and exist for the accuracy
benchmark only; `make_estimator` refuses them unless asked with `allow_offline=True`.
Accuracy on real recordings and per-sample cost: docs/accuracy.md (`hiplevel bench accuracy`).
"""
from __future__ import annotations

import math

import numpy as np

G_MS2 = 9.80665
DEG2RAD = np.pi / 180.0


def _check_rate(rate_hz: float) -> float:
    rate_hz = float(rate_hz)
    if not 1.0 <= rate_hz <= 10_000.0:  # also rejects NaN
        raise ValueError(f"rate_hz={rate_hz}: expected a sample rate in Hz (1 to 10000)")
    return rate_hz


class RestDetector:
    """Rest detection for estimators that have none, with VQF's default thresholds so `resting` means
    the same whichever estimator runs: gyro and accelerometer both within a threshold of their
    low-passed values, low-passed rate small, for at least `min_s` seconds. Plain floats, not numpy:
    on 3-vectors that is several times cheaper per sample."""

    def __init__(self, rate_hz: float, th_gyr_dps: float = 2.0, th_acc_g: float = 0.5 / G_MS2,
                 tau_s: float = 0.5, min_s: float = 1.5):
        self._alpha = 1.0 - math.exp(-1.0 / (rate_hz * tau_s))
        self._min_samples = int(round(min_s * rate_hz))
        self._th_gyr2, self._th_acc2 = th_gyr_dps ** 2, th_acc_g ** 2
        self._lp = None  # low-passed [gx, gy, gz, ax, ay, az]
        self._still = 0

    def update(self, gyr_dps, acc_g) -> bool:
        x = [float(v) for v in gyr_dps] + [float(v) for v in acc_g]
        if self._lp is None:
            self._lp = x
        else:
            a = self._alpha
            self._lp = [lp + a * (v - lp) for lp, v in zip(self._lp, x)]
        d = [v - lp for v, lp in zip(x, self._lp)]
        g = self._lp
        still = (d[0] ** 2 + d[1] ** 2 + d[2] ** 2 < self._th_gyr2
                 and g[0] ** 2 + g[1] ** 2 + g[2] ** 2 < self._th_gyr2
                 and d[3] ** 2 + d[4] ** 2 + d[5] ** 2 < self._th_acc2)
        self._still = self._still + 1 if still else 0
        return self._still >= self._min_samples


class VqfEstimator:
    """VQF (Laidig & Seel 2023), online, with its built-in rest detection and gyro bias estimation.
    Keyword arguments are VQF parameters (tauAcc, restThGyr, ...), defaults otherwise."""
    name = "vqf"
    live = True
    description = "VQF online (vqf defaults)"

    def __init__(self, rate_hz: float, **vqf_params):
        from vqf import VQF
        self.rate_hz = _check_rate(rate_hz)
        # VQF takes the sample *period* and silently accepts a rate by mistake (docs/architecture.md, library facts).
        self._vqf = VQF(1.0 / self.rate_hz, **vqf_params)
        # vqf rejects lists, float32 and non-contiguous arrays: convert into our own float64 buffers
        self._gyr = np.zeros(3)
        self._acc = np.zeros(3)

    def update(self, gyr_dps, acc_g) -> None:
        # vqf wants rad/s and m/s^2
        np.multiply(gyr_dps, DEG2RAD, out=self._gyr)
        np.multiply(acc_g, G_MS2, out=self._acc)
        self._vqf.update(self._gyr, self._acc)

    @property
    def quat_wxyz(self) -> np.ndarray:
        return self._vqf.getQuat6D()

    @property
    def resting(self) -> bool:
        return bool(self._vqf.getRestDetected())


class VqfOfflineEstimator:
    """VQF offline: non-causal (uses the whole recording, future included), so benchmark only.
    `update` stores samples; `smoothed_wxyz()` returns the estimate for every sample so far."""
    name = "vqf-offline"
    live = False
    description = "VQF offline, non-causal (benchmark only)"

    def __init__(self, rate_hz: float, **vqf_params):
        self.rate_hz = _check_rate(rate_hz)
        self._params = vqf_params
        self._gyr: list[np.ndarray] = []
        self._acc: list[np.ndarray] = []
        self._result = None  # cache of the last offline run, valid while no sample was added

    def update(self, gyr_dps, acc_g) -> None:
        self._gyr.append(np.asarray(gyr_dps, dtype=float) * DEG2RAD)
        self._acc.append(np.asarray(acc_g, dtype=float) * G_MS2)
        self._result = None

    def _run(self) -> dict:
        from vqf import offlineVQF
        if not self._gyr:
            raise RuntimeError("vqf-offline: no samples yet")
        if self._result is None:
            self._result = offlineVQF(np.array(self._gyr), np.array(self._acc), None,
                                      1.0 / self.rate_hz, self._params)
        return self._result

    def smoothed_wxyz(self) -> np.ndarray:
        """(N, 4) quaternions for all samples given so far, each using past *and* future samples."""
        return self._run()["quat6D"]

    @property
    def quat_wxyz(self) -> np.ndarray:
        return self._run()["quat6D"][-1]

    @property
    def resting(self) -> bool:
        return bool(self._run()["restDetected"][-1])


class _AhrsEstimator:
    """Shared part of the ahrs filters: they take the previous quaternion and return the next, want
    rad/s and m/s^2, and are started from the accelerometer's tilt as ahrs's batch mode does."""
    live = True

    def __init__(self, rate_hz: float):
        self.rate_hz = _check_rate(rate_hz)
        self._q = None
        self._rest = RestDetector(self.rate_hz)
        self._resting = False

    def _step(self, q: np.ndarray, gyr_rads: np.ndarray, acc_ms2: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, gyr_dps, acc_g) -> None:
        gyr_dps = np.asarray(gyr_dps, dtype=float)
        acc_g = np.asarray(acc_g, dtype=float)
        self._resting = self._rest.update(gyr_dps, acc_g)
        if self._q is None:
            from ahrs.common.orientation import acc2q
            self._q = acc2q(acc_g.copy())  # its z is up: up_in_sensor(acc2q(a)) == a / |a|
            return
        self._q = self._step(self._q, gyr_dps * DEG2RAD, acc_g * G_MS2)

    @property
    def quat_wxyz(self) -> np.ndarray:
        return np.array([1.0, 0.0, 0.0, 0.0]) if self._q is None else self._q

    @property
    def resting(self) -> bool:
        return self._resting


class MadgwickEstimator(_AhrsEstimator):
    """ahrs Madgwick, IMU (6D) update. Its objective compares the third row of R(q) with the
    normalised accelerometer, so its earth z is up and q rotates sensor to earth, as we want."""
    name = "madgwick"
    description = "ahrs Madgwick, gain 0.033"

    def __init__(self, rate_hz: float, gain: float = 0.033):
        super().__init__(rate_hz)
        from ahrs.filters import Madgwick
        # ahrs assumes 100 Hz unless told: 85 deg error on 285 Hz data (docs/architecture.md, library facts)
        self._filter = Madgwick(frequency=self.rate_hz, gain=gain)

    def _step(self, q, gyr_rads, acc_ms2):
        return self._filter.updateIMU(q, gyr_rads, acc_ms2)


class EkfEstimator(_AhrsEstimator):
    """ahrs EKF, accelerometer correction only. ahrs compares the normalised specific force (which
    points *up* at rest) with its reference `a_ref`: [0, 0, 1] for frame='NED', [0, 0, -1] for 'ENU'.
    So with 'ENU' its earth z points down, and with 'NED' its earth z is up - which is what we want;
    heading is not observable in 6D, so the N/E labels mean nothing here. Checked against BROAD's
    optical truth (docs/accuracy.md) and tests/test_estimators.py."""
    name = "ekf"
    description = "ahrs EKF, default noises"

    def __init__(self, rate_hz: float):
        super().__init__(rate_hz)
        from ahrs.filters import EKF
        self._filter = EKF(frequency=self.rate_hz, frame="NED")

    def _step(self, q, gyr_rads, acc_ms2):
        return self._filter.update(q, gyr_rads, acc_ms2)


class AccOnlyEstimator:
    """Tilt from the accelerometer alone, sample by sample: the baseline that ignores the gyroscope,
    so every linear acceleration shows up as tilt. The shortest rotation taking the measured up
    (normalised specific force) to earth z; heading is arbitrary."""
    name = "acc-only"
    live = True
    description = "accelerometer tilt only (baseline)"

    def __init__(self, rate_hz: float):
        self.rate_hz = _check_rate(rate_hz)
        self._q = np.array([1.0, 0.0, 0.0, 0.0])
        self._rest = RestDetector(self.rate_hz)
        self._resting = False

    def update(self, gyr_dps, acc_g) -> None:
        gyr_dps = np.asarray(gyr_dps, dtype=float)
        acc_g = np.asarray(acc_g, dtype=float)
        self._resting = self._rest.update(gyr_dps, acc_g)
        norm = np.linalg.norm(acc_g)
        if not norm > 0:  # free fall or a dead sensor: keep the last tilt
            return
        ax, ay, az = acc_g / norm
        # q = [1 + a.z, a x z] normalised rotates a onto z; undefined for a = -z, where any
        # half-turn about a horizontal axis does.
        q = np.array([1.0 + az, ay, -ax, 0.0]) if az > -1.0 + 1e-12 else np.array([0.0, 1.0, 0.0, 0.0])
        self._q = q / np.linalg.norm(q)

    @property
    def quat_wxyz(self) -> np.ndarray:
        return self._q

    @property
    def resting(self) -> bool:
        return self._resting


ESTIMATORS = {cls.name: cls for cls in
              (VqfEstimator, VqfOfflineEstimator, MadgwickEstimator, EkfEstimator, AccOnlyEstimator)}
DEFAULT_ESTIMATOR = "vqf"
LIVE_ESTIMATORS = [name for name, cls in ESTIMATORS.items() if cls.live]


def make_estimator(name: str, rate_hz: float, *, allow_offline: bool = False, **params):
    """A new estimator by name. Non-causal ones (live = False) need allow_offline=True: the live app
    must not run a filter that waits for the end of the recording. `params` go to the estimator's
    constructor (for VQF: its own parameter names)."""
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}") from None
    if not cls.live and not allow_offline:
        raise ValueError(f"estimator {name!r} needs the whole recording (non-causal) and cannot run "
                         f"live; choose from {', '.join(LIVE_ESTIMATORS)}")
    return cls(rate_hz, **params)


def up_in_sensor(quat_wxyz: np.ndarray) -> np.ndarray:
    """Earth z (up) expressed in the sensor frame: the third row of R(q), R rotating sensor->earth."""
    w, x, y, z = quat_wxyz
    return np.array([2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z])
