"""Pelvic angles from the orientation: obliquity (frontal plane) and forward tilt (sagittal).

In: the calibration's pelvis axes in sensor coordinates (host.processing.calibration.CalibrationResult:
`left_s`, `forward_s`) and the estimator's quaternion (w-x-y-z, sensor -> earth, z up). Out: two
angles in degrees per sample, signs as in docs/conventions.md; `vertical_motion` adds the vertical
acceleration and the rate of turn about the vertical for the exercises that need them.
"""
from __future__ import annotations

import math


def pelvis_angles_deg(cal, quat_wxyz) -> tuple[float, float]:
    """(obliquity_deg, forward_tilt_deg) from the current orientation (w-x-y-z, sensor->earth).
    Obliquity = elevation of the left axis (positive = left high); forward tilt = minus the elevation
    of the forward axis (positive = leaning forward). The elevation of a sensor-frame axis a is
    asin(a . up_s), with up_s the earth's z in sensor coordinates (host.processing.estimators.up_in_sensor).
    Plain floats, not numpy: this runs once per sample and 3-vectors are far cheaper this way."""
    w, x, y, z = quat_wxyz.tolist() if hasattr(quat_wxyz, "tolist") else quat_wxyz
    ux, uy, uz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), w * w - x * x - y * y + z * z
    lx, ly, lz = cal.left_s.tolist()
    fx, fy, fz = cal.forward_s.tolist()
    s_left = lx * ux + ly * uy + lz * uz
    s_fwd = fx * ux + fy * uy + fz * uz
    return (math.degrees(math.asin(min(1.0, max(-1.0, s_left)))),
            -math.degrees(math.asin(min(1.0, max(-1.0, s_fwd)))))


def vertical_motion(quat_wxyz, acc_g, gyr_dps) -> tuple[float, float]:
    """(vertical specific force minus 1 g, rate of turn about the vertical in deg/s): acc_g and
    gyr_dps (sensor frame, bias removed) projected on earth up as seen in the sensor frame. Only the
    exercises that count reps from the pelvis moving up and down or turning need these."""
    w, x, y, z = quat_wxyz.tolist() if hasattr(quat_wxyz, "tolist") else quat_wxyz
    ux, uy, uz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), w * w - x * x - y * y + z * z
    ax, ay, az = acc_g.tolist() if hasattr(acc_g, "tolist") else acc_g
    gx, gy, gz = gyr_dps.tolist() if hasattr(gyr_dps, "tolist") else gyr_dps
    return ax * ux + ay * uy + az * uz - 1.0, gx * ux + gy * uy + gz * uz
