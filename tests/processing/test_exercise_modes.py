"""The exercises of host.processing.exercise_modes, alone: synthetic angle and motion streams in,
reps and cues out (the simulator and the whole pipeline: tests/e2e/test_modes_end_to_end.py and
tests/bench/test_bench_reps.py)."""
import math

import pytest

from host.processing.exercise import EXERCISES, Exercise, ExerciseConfig
from host.processing.exercise_modes import HOLD_LEAD_S, MODES, Motion

RATE_HZ = 100.0


def bump(t, start, length, amp):
    """0 -> amp -> 0 as a raised cosine over [start, start + length]."""
    u = (t - start) / length
    return amp * 0.5 * (1 - math.cos(2 * math.pi * u)) if 0 <= u <= 1 else 0.0


def feed(ex, seconds, obl=lambda t: 0.0, fwd=lambda t: 0.0, vert=lambda t: 0.0, yaw_rate=lambda t: 0.0):
    events = []
    for i in range(int(seconds * RATE_HZ)):
        t = i / RATE_HZ
        events += ex.update(t, obl(t), fwd(t), Motion(vert(t), yaw_rate(t)) if ex.needs_motion else None)
    return events


def reps_of(events):
    return [e for e in events if e["event"] == "rep"]


def test_every_mode_is_an_exercise_the_command_line_offers():
    assert set(MODES) <= set(EXERCISES) and "captain-morgan" in EXERCISES


def yaw_rate_of_turns(starts, length, amp_deg):
    """deg/s of a pelvis turning out by amp and back in each [start, start + length]."""
    def rate(t):
        for s in starts:
            u = (t - s) / length
            if 0 <= u <= 1:
                return amp_deg * 0.5 * 2 * math.pi / length * math.sin(2 * math.pi * u)
        return 0.0
    return rate


def test_fire_hydrant_counts_each_turn_toward_the_free_side_and_cues_the_drop():
    # stance left: the free side is the right, a turn toward it is negative yaw
    ex = Exercise(ExerciseConfig(exercise="fire-hydrant", stance="left"))
    rate = yaw_rate_of_turns([1.0, 4.0, 7.0], 2.0, -8.0)
    events = feed(ex, 10.0, obl=lambda t: bump(t, 4.2, 1.6, 7.0), yaw_rate=rate)
    reps = reps_of(events)
    assert len(reps) == 3 and [r["cued"] for r in reps] == [False, True, False]
    assert all(7.0 < r["max_turn_deg"] < 8.5 for r in reps)


def test_a_turn_away_from_the_free_side_is_not_a_rep():
    ex = Exercise(ExerciseConfig(exercise="fire-hydrant", stance="left"))
    assert reps_of(feed(ex, 5.0, yaw_rate=yaw_rate_of_turns([1.0], 2.0, +8.0))) == []


def test_front_back_swing_is_one_rep_forward_and_back():
    ex = Exercise(ExerciseConfig(exercise="hip-swings", stance="right", swing="front-back"))

    def rate(t):  # free side left: the forward swing turns the front to the left (+), then back (-)
        u = t - 1.0
        return 7.0 * 2 * math.pi / 2.0 * math.cos(2 * math.pi * u / 2.0) if 0 <= u <= 2.0 else 0.0
    reps = reps_of(feed(ex, 4.0, yaw_rate=rate))
    assert len(reps) == 1 and reps[0]["max_turn_deg"] == pytest.approx(7.0, abs=0.5)


def test_lateral_step_down_rep_from_the_pelvis_going_down_and_up():
    ex = Exercise(ExerciseConfig(exercise="lateral-step-down", stance="left"))
    g = 9.80665

    def vert(t):  # z(t) = -0.15 m * bump over 2 s: its second derivative, in g
        u = t - 2.0
        return -0.15 * 0.5 * (2 * math.pi / 2.0) ** 2 * math.cos(2 * math.pi * u / 2.0) / g if 0 <= u <= 2 else 0.0
    reps = reps_of(feed(ex, 6.0, obl=lambda t: bump(t, 2.0, 2.0, 3.0), vert=vert))
    assert len(reps) == 1 and 0.06 < reps[0]["depth_m"] < 0.16 and not reps[0]["cued"]


def test_pelvic_tilt_chimes_at_the_target_and_times_the_hold():
    ex = Exercise(ExerciseConfig(exercise="pelvic-tilt", stance="left", target_deg=10.0))

    def fwd(t):
        if 1.0 <= t < 2.0:
            return 12.0 * (t - 1.0)
        if 2.0 <= t < 6.0:
            return 12.0                      # held past the target for 4 s (and 1/6 s on each ramp)
        if 6.0 <= t < 7.0:
            return 12.0 - 16.0 * (t - 6.0)   # back past level to -4
        if 7.0 <= t < 8.0:
            return -4.0 + 4.0 * (t - 7.0)
        return 0.0
    events = feed(ex, 10.0, fwd=fwd)
    (rep,) = reps_of(events)
    assert rep["reached_target"] and rep["cued"]
    assert rep["hold_s"] == pytest.approx(4.0 + 1 / 6 + 1 / 8, abs=0.05)
    assert rep["max_backward_tilt_deg"] == pytest.approx(4.0, abs=0.1)
    assert [e["kind"] for e in events if e["event"] == "cue_on"] == ["target"]


def test_timed_hold_is_clocked_from_the_start_and_cues_only_during_a_hold():
    ex = Exercise(ExerciseConfig(exercise="timed-hold", stance="left", hold_s=5.0, rest_s=3.0))
    start = HOLD_LEAD_S
    # a drop during the first hold, and one during the rest after it (both feet down: no cue)
    events = feed(ex, 2 * 8.0 + start + 0.5,
                  obl=lambda t: bump(t, start + 2.0, 1.0, 8.0) + bump(t, start + 5.8, 1.0, 8.0))
    reps = reps_of(events)
    assert [r["hold_s"] for r in reps] == [pytest.approx(5.0, abs=0.02)] * 2
    assert [r["drops_past"] for r in reps] == [1, 0]
    assert 4.0 < reps[0]["time_within_band_s"] < 4.7 and reps[1]["time_within_band_s"] == pytest.approx(5.0, abs=0.02)
    assert len([e for e in events if e["event"] == "cue_on"]) == 1


@pytest.mark.parametrize("exercise", ["fire-hydrant", "lateral-step-down", "timed-hold"])
def test_a_rep_cut_by_the_end_of_the_set_is_not_a_rep(exercise):
    ex = Exercise(ExerciseConfig(exercise=exercise, stance="left", hold_s=5.0))
    g = 9.80665
    feed(ex, 2.0, yaw_rate=lambda t: -8.0 if t > 1.0 else 0.0,
         vert=lambda t: -0.3 / g if 1.0 < t < 1.5 else 0.0)
    assert ex._rep is not None               # a movement (a hold) is under way
    incomplete, summary = ex.end_set(2.0)
    assert incomplete["event"] == "rep_incomplete"
    assert summary["event"] == "set_summary" and summary["reps"] == 0


def test_bad_settings_are_refused_in_words():
    with pytest.raises(ValueError, match="target tilt"):
        ExerciseConfig(exercise="pelvic-tilt", target_deg=45.0)
    with pytest.raises(ValueError, match="hold lasts"):
        ExerciseConfig(exercise="timed-hold", hold_s=1.0)
    with pytest.raises(ValueError, match="unknown swing"):
        ExerciseConfig(exercise="hip-swings", swing="sideways")
    with pytest.raises(ValueError, match="not for the pelvic-tilt"):
        ExerciseConfig(exercise="pelvic-tilt", feedback="bandwidth")
