"""Mounting calibration against simulator truth: the guided bend calibration over a grid of belt
mountings, tempos and noise levels, its refusals, its prompts in the pipeline and the window, and
one run end to end (simulator process -> real pty -> `hiplevel run` process).

In-process runs go simulated sensor -> encoded frames -> SampleDecoder -> Pipeline (host.bench.calibration
.simulate), faster than real time; the truth is the simulator's kinematic model at each sample's time.
"""
from __future__ import annotations

import os

# Before anything creates a QApplication: the window test draws offscreen whatever display there is.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import itertools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tests.support.simproc import ROOT, Sim, hiplevel, run_host  # noqa: E402

from firmware_sim.motion import Scenario  # noqa: E402
from host.bench.calibration import (GRID_NOISE, GRID_REP_S, GRID_TILT_DEG, GRID_YAW_DEG,  # noqa: E402
                                    simulate, squat_scenario)
from host.processing.calibration import BendCalibration, StandingCalibration, make_calibration  # noqa: E402

# Every mounting of the grid, with tempo and noise level cycling through their values so that each
# of them meets every yaw (the full product is `hiplevel bench calibration`).
GRID = [(yaw, tilt, GRID_REP_S[k % len(GRID_REP_S)], GRID_NOISE[k % len(GRID_NOISE)])
        for k, (yaw, tilt) in enumerate(itertools.product(GRID_YAW_DEG, GRID_TILT_DEG))]
_summary = []


@pytest.mark.parametrize("yaw", GRID_YAW_DEG)
def test_squat_obliquity_within_half_a_degree_for_any_mounting(yaw):
    for k, (y, tilt, rep_s, noise) in enumerate(GRID):
        if y != yaw:
            continue
        r = simulate(squat_scenario(rep_s=rep_s, lean_deg=30.0), mount_yaw_deg=yaw, mount_tilt_deg=tilt,
                     noise=noise, seed=40 + k)
        assert [e["event"] for e in r.events if e["event"].startswith("calib")] == ["calibrated"], r.events
        cal = r.calibrated
        rmse, fwd = r.rmse("obliquity"), r.rmse("forward")
        _summary.append(f"yaw {yaw:+4d} tilt {tilt:2d} rep {rep_s} s noise {noise}: obliquity RMSE {rmse:.3f}, "
                        f"forward tilt RMSE {fwd:.3f}, bends {cal['bends_deg']}, agreement "
                        f"{cal['bend_agreement_deg']}, yaw found {cal['mounting_yaw_deg']}")
        print(_summary[-1])
        assert rmse < 0.5, _summary[-1]
        assert fwd < 1.0, _summary[-1]
        assert cal["quality"] == "good"
        assert abs(cal["mounting_yaw_deg"] - yaw) < 4.0  # the belt's position is reported as it is
        assert abs(cal["mounting_tilt_deg"] - tilt) < 1.5  # sensor +y against the vertical
        # the angles are reported from the end of the calibration, and the reps are all there
        assert set(np.unique(r.true_phase)) == {"settle", "rep", "end"}
        assert r.rmse(phases=("rep",)) < 0.5


def test_standing_only_is_fine_square_and_wrong_when_the_belt_is_turned():
    square = simulate(squat_scenario(calibration_bends=0), calibration="standing", mount_yaw_deg=0,
                      mount_tilt_deg=10, seed=3)
    assert square.calibrated["method"] == "standing" and square.calibrated["quality"] == "assumed"
    assert square.rmse() < 0.5
    turned = simulate(squat_scenario(calibration_bends=0), calibration="standing", mount_yaw_deg=30,
                      mount_tilt_deg=10, seed=3)
    assert turned.rmse() > 3.0  # forward lean leaks into obliquity: what the bends are for
    bends = simulate(squat_scenario(), calibration="bends", mount_yaw_deg=30, mount_tilt_deg=10, seed=3)
    assert bends.rmse() < 0.5


def failures(run):
    return [(e["reason"], e["message"]) for e in run.events if e["event"] == "calibration_failed"]


def test_moving_during_the_still_phase_is_refused_then_it_calibrates():
    sc = squat_scenario(still_s=5.0, fidget_at_s=1.5)  # a weight shift 1.5 s into standing still
    r = simulate(sc, mount_yaw_deg=-45, mount_tilt_deg=10, seed=5)
    (reason, message), = failures(r)
    assert reason == "moved_during_still"
    assert re.fullmatch(r"You moved after 1\.[5-7] s of the 2 s still phase\.", message)
    first_fail = next(e for e in r.events if e["event"] == "calibration_failed")
    assert 1.5 <= first_fail["t"] <= 1.7
    assert r.calibrated and r.calibrated["quality"] == "good"
    assert r.rmse() < 0.5


def test_a_fidget_before_the_still_phase_is_under_way_is_not_a_failure():
    r = simulate(squat_scenario(still_s=5.0, fidget_at_s=0.3), seed=5)
    assert failures(r) == [] and r.calibrated


def test_bends_too_small_are_refused_with_how_far_they_went():
    r = simulate(Scenario(drops_deg=[6, 6], bend_deg=10.0), mount_yaw_deg=30, mount_tilt_deg=10, seed=2)
    reason, message = failures(r)[0]
    assert reason == "bend_too_small"
    assert "reached 10°" in message and "at least 15°" in message
    assert r.calibrated is None  # never calibrated on bad bends: no angles at all
    assert len(r.seq) == 0


def test_bends_in_different_directions_are_refused():
    r = simulate(Scenario(drops_deg=[6, 6], bend_skews_deg=[0.0, 15.0]), seed=2)  # second bend diagonal
    reason, message = failures(r)[0]
    assert reason == "bends_inconsistent" and "15." in message and "hips square" in message
    assert r.calibrated is None


def test_a_backward_bend_is_refused_rather_than_swapping_left_and_right():
    r = simulate(Scenario(drops_deg=[6, 6], bend_skews_deg=[180.0, 180.0]), seed=2)  # leaning back
    assert failures(r)[0][0] == "backward_bend"
    assert r.calibrated is None


def test_only_one_bend_times_out():
    sc = Scenario(exercise="stand", drops_deg=[0.0] * 9, calibration_bends=1)
    r = simulate(sc, seed=2)
    reason, message = failures(r)[0]
    assert reason == "timeout" and message.startswith("Only 1 of 2 bends seen in 30 s")


def test_a_large_gyro_bias_is_measured_in_the_still_phase():
    # 3 deg/s is beyond what VQF learns by itself (its bias clip is 2 deg/s)
    bias = [3.0, -2.5, 1.5]
    r = simulate(squat_scenario(), gyr_bias_dps=bias, mount_yaw_deg=45, mount_tilt_deg=10, seed=9)
    assert np.allclose(r.pipeline.calibration.gyr_bias_dps, bias, atol=0.05)
    assert r.rmse() < 0.5


def run_in_process(sc, live, seed=1, **device):
    """Simulated sensor -> decoder -> Pipeline with a LiveBuffer, yielding after every batch."""
    from firmware_sim.device import SimDevice
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import SampleDecoder
    dev = SimDevice(sc, seed=seed, **device)
    dev.streaming = True
    pipe = Pipeline(PipelineConfig(), live=live)
    dec = SampleDecoder()
    dec.feed(dev.info_frame(), 0.0)
    pipe.on_info(dec.info)
    t = 0.0
    while not dev.finished:
        t += 0.1
        for frame in dev.frames_due(t):
            batch = dec.feed(frame, 0.0)
            if batch is not None:
                pipe.process(batch)
                yield pipe


def test_prompts_and_progress_guide_the_user_through_the_steps():
    from host.sinks.live import LiveBuffer
    live = LiveBuffer()
    messages, progress = [], []
    for pipe in run_in_process(Scenario(drops_deg=[6.0]), live, mount_yaw_deg=70, mount_tilt_deg=5):
        msg = live.status_copy().message
        if not messages or messages[-1] != msg:
            messages.append(msg)
        if pipe.calibration.result is None:
            progress.append(pipe.calibration.progress)
    steps = [m for m in messages if not m.startswith("Calibrated")]
    assert steps[0].startswith("Stand still and level")
    assert any("Bend forward slowly" in m and "(1 of 2)" in m for m in steps)
    assert any("(2 of 2)" in m for m in steps)
    assert steps[-1] == "Stand still…"
    assert messages[-1].startswith("Calibrated: good (bends ") and "axis repeatable within" in messages[-1]
    assert progress[0] < 0.1 and max(progress) > 0.9
    assert all(b >= a - 1e-9 for a, b in zip(progress, progress[1:]))  # it only ever moves forward
    st = live.status_copy()
    assert st.calibrated and not st.calibrating

    # recalibrating starts the guided sequence again
    pipe.recalibrate()
    assert live.status_copy().calibrating and not live.status_copy().calibrated
    assert pipe.calibration.result is None and pipe.calibration.prompt.startswith("Stand still and level")


def bend_sequence(cal, left_s, bias, rate=100.0, bends=2, bend_deg=25.0, up_s=(0.0, 1.0, 0.0)):
    """Feed a synthetic still phase and `bends` bends of `bend_deg` about `left_s` (1 s down, 1 s up)."""
    up_s = np.asarray(up_s)
    out, t = [], 0.0

    def feed(gyr, seconds):
        nonlocal t
        for _ in range(int(round(seconds * rate))):
            out.append(cal.update(t, gyr, up_s))
            t += 1 / rate
    feed(bias, 2.5)
    for _ in range(bends):
        feed(bias + bend_deg * left_s, 1.0)
        feed(bias - bend_deg * left_s, 1.0)
        feed(bias, 0.5)
    feed(bias, 2.0)
    return out


def test_calibration_classes_directly():
    """Synthetic still phase + rotations about a known sensor axis: the axis comes out exactly, and the
    still phase's mean gyro reading is the bias. The accelerometer stays put: bends follow the gyro."""
    left_s = np.array([-0.6, 0.0, -0.8])  # belt turned 53° toward the left (horizontal when up = +y)
    bias = np.array([0.4, -0.3, 0.2])
    cal = make_calibration("bends", 100.0)
    assert isinstance(cal, BendCalibration)
    out = bend_sequence(cal, left_s, bias)
    assert "failed" not in out, cal.failure
    assert out.count("calibrated") == 1
    res = cal.result
    assert np.degrees(np.arccos(res.left_s @ left_s)) < 0.01
    assert np.allclose(cal.gyr_bias_dps, bias)
    assert res.bends_deg == pytest.approx([25.0, 25.0], abs=0.3)
    assert res.quality == "good" and res.bend_agreement_deg < 0.01
    assert res.mounting_yaw_deg == pytest.approx(53.13, abs=0.01) and res.mounting_tilt_deg < 0.01
    assert np.allclose(res.forward_s, np.cross(res.left_s, res.up_s))  # x = y cross z

    backward = make_calibration("bends", 100.0)
    out = bend_sequence(backward, -left_s, bias)
    assert backward.result is None and backward.failure.reason == "backward_bend"

    with pytest.raises(ValueError, match="unknown calibration"):
        make_calibration("wiggle", 100.0)
    standing = make_calibration("standing", 100.0)
    assert isinstance(standing, StandingCalibration)
    assert "calibrated" in bend_sequence(standing, left_s, bias, bends=0)
    assert np.allclose(standing.result.left_s, [-1.0, 0.0, 0.0])  # the default mounting, not measured


# ---- the window, drawn offscreen ------------------------------------------------------------------

def test_window_shows_the_prompts_and_the_result(qtbot):
    from host.gui.live_window import MainWindow
    from host.sinks.live import LiveBuffer
    live = LiveBuffer()
    w = MainWindow(live)
    qtbot.addWidget(w)
    w.show()
    seen = []
    for k, _ in enumerate(run_in_process(Scenario(drops_deg=[6.0]), live, mount_yaw_deg=-60, mount_tilt_deg=10)):
        if k % 10 == 0:  # every 0.2 s of sensor time, let the window's own timer redraw
            qtbot.wait(int(w.timer.interval()) + 10)
            # the step asked for is the big text; the result goes to the status line
            shown = w.angle_label.text() + " | " + w.status_label.text()
            if not seen or seen[-1] != shown:
                seen.append(shown)
    joined = "\n".join(seen)
    assert "Stand still and level" in seen[0]
    assert "Bend forward slowly" in joined and "(2 of 2)" in joined
    assert any("Calibrated: good" in s for s in seen)
    assert live.status_copy().calibrated


# ---- end to end over a real pty --------------------------------------------------------------------

def test_end_to_end_turned_tilted_belt_with_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("HIPLEVEL_DB", str(tmp_path / "sessions.sqlite"))
    ev, ang, truth = tmp_path / "ev.jsonl", tmp_path / "ang.csv", tmp_path / "truth.csv"
    with Sim("--exercise", "single-leg-squat", "--drops", "3,8,4,9", "--mount-yaw", 60, "--mount-tilt", 15,
             "--loss", 0.05, "--speed", 4, "--seed", 4, "--truth", truth) as sim:
        r = run_host("--serial", sim.port, "--exercise", "single-leg-squat", "--headless", "--mute",
                     "--events", ev, "--angles", ang)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    events = [json.loads(line) for line in open(ev)]
    cal = [e for e in events if e["event"].startswith("calib")]
    assert [e["event"] for e in cal] == ["calibrated"]
    assert cal[0]["method"] == "bends" and cal[0]["quality"] == "good"
    assert abs(cal[0]["mounting_yaw_deg"] - 60) < 4
    assert "Bend forward slowly" in r.stdout  # the console view guided through the bends

    t = np.genfromtxt(truth, delimiter=",", names=True, dtype=None, encoding="utf-8")
    a = np.genfromtxt(ang, delimiter=",", names=True)
    assert set(t["phase"]) == {"still", "bend", "settle", "rep", "end"}
    assert sorted(set(t["rep"][t["phase"] == "rep"])) == [0, 1, 2, 3]  # bends are not reps
    assert np.all(t["rep"][t["phase"] == "bend"] == -1)
    row = {int(s): i for i, s in enumerate(t["seq"])}
    idx = np.array([row[int(s)] for s in a["seq"]])
    err = a["obliquity_deg"] - t["obliquity_deg"][idx]
    rmse = float(np.sqrt(np.mean(err ** 2)))
    print(f"end to end, yaw 60 tilt 15, 5 % loss: obliquity RMSE {rmse:.3f} deg over {len(err)} samples")
    assert rmse < 0.7
    gaps = np.nonzero(np.diff(a["seq"]) > 1)[0]
    assert len(gaps) > 10
    jump = np.abs(np.diff(a["obliquity_deg"])[gaps] - np.diff(t["obliquity_deg"][idx])[gaps])
    assert jump.max() < 0.1
    reps = [e for e in events if e["event"] == "rep"]
    assert len(reps) == 4


def test_end_to_end_bends_too_small_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HIPLEVEL_DB", str(tmp_path / "sessions.sqlite"))
    ev = tmp_path / "ev.jsonl"
    with Sim("--drops", "6", "--bend-deg", 8, "--speed", 3, "--seed", 2) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--events", ev)
    assert "Traceback" not in r.stderr
    events = [json.loads(line) for line in open(ev)]
    failed = [e for e in events if e["event"] == "calibration_failed"]
    assert failed and failed[0]["reason"] == "bend_too_small" and "reached 8°" in failed[0]["message"]
    assert not any(e["event"] == "calibrated" for e in events)
    assert "bend further" in r.stdout  # the console said why


@pytest.mark.parametrize("args,words", [
    (["sim", "--bends", "-1"], "--bends must be 0 or more"),
    (["sim", "--bend-deg", "120"], "--bend-deg must be within 0..90"),
    (["run", "--serial", "/dev/null", "--calibration", "wiggle"], "invalid choice"),
])
def test_wrong_calibration_options_get_clear_errors(args, words):
    import subprocess
    r = subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
