"""Orientation estimators against synthetic motion with exactly known orientation.

The motion is generated here: an orientation trajectory (sensor->earth quaternion, z up) is integrated
from an earth-frame angular rate, and the sensor readings follow from it exactly - gyr_dps is the rate in
the sensor frame, acc_g is specific force (up at rest, plus any linear acceleration) in the sensor
frame. Each estimator is fed these samples through its per-sample API and compared with the truth.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from host.processing.estimators import (DEFAULT_ESTIMATOR, ESTIMATORS, LIVE_ESTIMATORS, make_estimator,
                             up_in_sensor)

FUSION = [n for n in LIVE_ESTIMATORS if n != "acc-only"]  # the ones that use the gyroscope


# --- quaternion helpers written out independently of host.processing.estimators -----------------------------
def qmul(p, q):
    pw, px, py, pz = p
    qw, qx, qy, qz = q
    return np.array([pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
                     pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw])


def qconj(q):
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotate(q, v):
    """v_E = q (x) v_S (x) q*: sensor vector to earth frame."""
    return qmul(qmul(q, np.r_[0.0, v]), qconj(q))[1:]


def axis_angle(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    h = math.radians(angle_deg) / 2
    return np.r_[math.cos(h), math.sin(h) * axis]


def angle_deg(u, v):
    u, v = np.asarray(u) / np.linalg.norm(u), np.asarray(v) / np.linalg.norm(v)
    return math.degrees(math.atan2(np.linalg.norm(np.cross(u, v)), np.dot(u, v)))


def simulate(rate_hz, duration_s, q0, turn_axis_earth=(1.0, 0.0, 0.0), turn_deg=lambda t: 0.0,
             lin_acc_earth_g=lambda t: np.zeros(3), noise=True, seed=0):
    """Exact sensor readings for a motion: from orientation q0 (sensor->earth), a turn of turn_deg(t)
    about a fixed earth axis, plus a linear acceleration. Sample k's gyro is the mean rate over the step
    that ends at sample k, which is how the filters integrate it; a rotation about a fixed earth axis
    has a constant sensor-frame rate over the step, so the readings are exact at any sample rate.
    Returns t_s, gyr_dps, acc_g, q_true (sensor->earth)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    axis = np.asarray(turn_axis_earth, float)
    axis /= np.linalg.norm(axis)
    q0 = np.asarray(q0, float) / np.linalg.norm(q0)
    gyr, acc, qs = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 4))
    angles = np.array([turn_deg(x) for x in t])
    for k in range(n):
        q = qmul(axis_angle(axis, angles[k]), q0)
        if k:
            gyr[k] = rotate(qconj(q), axis) * (angles[k] - angles[k - 1]) * rate_hz
        acc[k] = rotate(qconj(q), np.array([0.0, 0.0, 1.0]) + lin_acc_earth_g(t[k]))
        qs[k] = q
    if noise:  # a little white noise, as a real sensor has (and Madgwick skips steps with gyro == 0)
        gyr += rng.normal(0, 0.05, gyr.shape)
        acc += rng.normal(0, 0.002, acc.shape)
    return t, gyr, acc, qs


def run(name, rate_hz, gyr, acc):
    est = make_estimator(name, rate_hz, allow_offline=True)
    out = []
    for g, a in zip(gyr, acc):
        est.update(g, a)
        if est.live:
            out.append(est.quat_wxyz.copy())
    return est, (np.array(out) if est.live else est.smoothed_wxyz())


def test_up_in_sensor_matches_rotation():
    # sensor->earth: +90 deg about x takes sensor +y to earth +z, so up in the sensor frame is +y
    assert np.allclose(up_in_sensor(axis_angle([1, 0, 0], 90)), [0, 1, 0])
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        up_s = up_in_sensor(q)
        assert np.allclose(rotate(q, up_s), [0, 0, 1])


# Default mounting (sensor +y up), tilted, on its side, nearly upside down.
STATIC_UPS = [[0, 1, 0], [0.2, 0.95, -0.3], [1, 0, 0], [0, 0, 1], [0.3, -0.2, -0.93]]


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_static_tilt(name):
    rate = 100.0
    for up in STATIC_UPS:
        up = np.asarray(up, float) / np.linalg.norm(up)
        # the orientation whose up-in-sensor is `up`: rotate `up` onto earth z (any heading will do)
        axis = np.cross(up, [0, 0, 1])
        q0 = (axis_angle(axis, angle_deg(up, [0, 0, 1])) if np.linalg.norm(axis) > 1e-9
              else np.array([1.0, 0, 0, 0]))
        t, gyr, acc, qt = simulate(rate, 6.0, q0, seed=3)
        est, q = run(name, rate, gyr, acc)
        assert np.allclose(up_in_sensor(qt[-1]), up)
        last_s = t >= 5.0
        err = np.mean([angle_deg(up_in_sensor(x), up) for x in q[last_s]])
        assert err < 0.3, f"{name}: up {up.round(2)} estimated {err:.2f} deg off"
        # convention: the estimate rotates the measured specific force (up) onto earth +z
        assert np.mean([angle_deg(rotate(x, a), [0, 0, 1]) for x, a in zip(q[last_s], acc[last_s])]) < 0.5
        assert est.resting, f"{name}: 6 s still but not resting"


def _horizontal_rotation(rate_hz):
    """Default mounting (sensor +y up), 5 s still, then 90 deg/s for 2 s about the earth's x axis
    (horizontal): a half turn. Then 2 s still."""
    return simulate(rate_hz, 9.0, axis_angle([1, 0, 0], 90),
                    turn_deg=lambda t: 90.0 * min(max(t - 5.0, 0.0), 2.0))


@pytest.mark.parametrize("name", FUSION)
def test_constant_rate_rotation_about_horizontal_axis(name):
    rate = 100.0
    t, gyr, acc, qt = _horizontal_rotation(rate)
    est, q = run(name, rate, gyr, acc)
    ups_true = np.array([up_in_sensor(x) for x in qt])
    ups_est = np.array([up_in_sensor(x) for x in q])
    # the vertical turns 180 deg in the sensor frame; a wrong gyro unit, sign or rate is tens of degrees
    assert angle_deg(ups_true[0], ups_true[-1]) == pytest.approx(180, abs=0.01)
    err = np.array([angle_deg(a, b) for a, b in zip(ups_est, ups_true)])
    assert err[t >= 3].max() < 2.0, f"{name}: max {err[t >= 3].max():.2f} deg during the rotation"
    assert err[-1] < 1.0
    # rest detection: still before the turn, moving during it
    est2 = make_estimator(name, rate)
    rest = []
    for g, a in zip(gyr, acc):
        est2.update(g, a)
        rest.append(est2.resting)
    rest = np.array(rest)
    assert rest[(t > 4) & (t < 5)].all() and not rest[(t > 5.5) & (t < 7)].any()


@pytest.mark.parametrize("name", FUSION)
def test_fusion_rejects_linear_acceleration(name):
    """A 0.3 g side-to-side shake: accelerometer-only tilt swings ~17 deg, fusion must not."""
    rate = 100.0
    q0 = axis_angle([1, 0, 0], 90)
    def shake(t):
        return np.array([0.3 * math.sin(2 * math.pi * 2.0 * t), 0, 0]) if t >= 5 else np.zeros(3)
    t, gyr, acc, qt = simulate(rate, 8.0, q0, lin_acc_earth_g=shake)
    _, q_fused = run(name, rate, gyr, acc)
    _, q_acc = run("acc-only", rate, gyr, acc)
    up_true = up_in_sensor(qt[0])  # the sensor does not turn
    moving = t >= 5
    err_fused = max(angle_deg(up_in_sensor(x), up_true) for x in q_fused[moving])
    err_acc = max(angle_deg(up_in_sensor(x), up_true) for x in q_acc[moving])
    assert err_acc > 15  # the disturbance is real
    assert err_fused < 3.0, f"{name}: {err_fused:.2f} deg under a 0.3 g shake"


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_same_motion_same_answer_at_any_rate(name):
    """A filter told the wrong rate integrates the gyro wrongly (ahrs silently assumes 100 Hz): the
    half turn would become hundreds of degrees at 285.7 Hz."""
    answers = {}
    for rate in (100.0, 285.7):
        t, gyr, acc, qt = _horizontal_rotation(rate)
        _, q = run(name, rate, gyr, acc)
        # the same instants at both rates: still before the turn, halfway through it, still after it
        idx = [int(round(ts * rate)) for ts in (4.0, 6.0)] + [len(t) - 1]
        answers[rate] = [up_in_sensor(q[i]) for i in idx]
        for i in idx:
            assert angle_deg(up_in_sensor(q[i]), up_in_sensor(qt[i])) < 1.5
    before, mid, after = (angle_deg(a, b) for a, b in zip(answers[100.0], answers[285.7]))
    assert before < 0.3 and after < 0.3, f"{name}: {before:.2f} / {after:.2f} deg apart"
    # mid-turn, Madgwick runs one sample ahead of the truth (its accelerometer step uses the previous
    # quaternion): 0.9 deg at 100 Hz, 0.3 deg at 285.7 Hz; the others agree within 0.1 deg
    assert mid < 1.0, f"{name}: {mid:.2f} deg apart mid-turn at 100 and 285.7 Hz"


def test_make_estimator_names_and_refusals():
    assert DEFAULT_ESTIMATOR in LIVE_ESTIMATORS
    assert set(ESTIMATORS) >= {"vqf", "vqf-offline", "madgwick", "ekf", "acc-only"}
    for name, cls in ESTIMATORS.items():
        est = make_estimator(name, 200.0, allow_offline=True)
        assert est.name == name and isinstance(est, cls)
    with pytest.raises(ValueError, match="unknown estimator 'kalman'.*vqf"):
        make_estimator("kalman", 100.0)
    # the live app calls make_estimator(name, rate): a non-causal filter must be refused there
    assert not ESTIMATORS["vqf-offline"].live
    with pytest.raises(ValueError, match="cannot run live"):
        make_estimator("vqf-offline", 100.0)
    for bad_rate in (0.0, float("nan"), 1 / 285.7, 1e6):  # a period passed as a rate, among others
        with pytest.raises(ValueError, match="rate"):
            make_estimator("vqf", bad_rate)
