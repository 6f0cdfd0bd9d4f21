"""Each exercise mode end to end: simulator process -> pty -> `hiplevel run` process -> events."""
import json

import pytest
from tests.support.simproc import Sim, run_host


def events_of(path):
    return [json.loads(line) for line in open(path)]


def by_kind(events, kind):
    return [e for e in events if e["event"] == kind]


@pytest.mark.parametrize("stance", ["left", "right"])
def test_single_leg_squat_counts_every_squat_and_flags_the_drops(tmp_path, stance):
    ev = tmp_path / "ev.jsonl"
    with Sim("--exercise", "single-leg-squat", "--stance", stance, "--drops", "0,7,3,9", "--speed", 4,
             "--seed", 5, "--mount-yaw", 40) as sim:
        r = run_host("--serial", sim.port, "--exercise", "single-leg-squat", "--stance", stance,
                     "--headless", "--mute", "--no-record", "--events", ev)
    assert r.returncode == 0, r.stderr
    events = events_of(ev)
    reps = by_kind(events, "rep")
    assert len(reps) == 4  # the perfect rep with no drop counts too
    assert [r["cued"] for r in reps] == [False, True, False, True]
    assert all(rep["max_forward_tilt_deg"] > 20 for rep in reps)
    assert reps[1]["time_past_threshold_s"] > 0.2 and reps[0]["time_past_threshold_s"] == 0
    assert all(c["kind"] == "fault" for c in by_kind(events, "cue_on"))
    summary = by_kind(events, "set_summary")
    assert len(summary) == 1 and summary[0]["reps"] == 4 and summary[0]["cued_reps"] == 2
    assert summary[0]["worst_drop_deg"] == pytest.approx(9.0, abs=0.7)
    assert "Set 1: 4 reps, 2 with the cue" in r.stdout


def test_hip_dip_target_cue_and_return_to_level(tmp_path):
    ev = tmp_path / "ev.jsonl"
    with Sim("--drops", "4,7", "--speed", 4, "--seed", 8) as sim:
        r = run_host("--serial", sim.port, "--threshold", 6, "--headless", "--mute", "--no-record",
                     "--events", ev)
    assert r.returncode == 0, r.stderr
    events = events_of(ev)
    reps = by_kind(events, "rep")
    assert [rep["reached_target"] for rep in reps] == [False, True]
    assert all(rep["returned_to_level"] for rep in reps)
    cues = by_kind(events, "cue_on")
    assert len(cues) == 1 and cues[0]["kind"] == "target"


def test_keep_level_cues_without_counting_reps(tmp_path):
    ev = tmp_path / "ev.jsonl"
    with Sim("--drops", "3,8,9", "--speed", 4, "--seed", 2) as sim:
        r = run_host("--serial", sim.port, "--exercise", "keep-level", "--headless", "--mute",
                     "--no-record", "--events", ev)
    assert r.returncode == 0, r.stderr
    events = events_of(ev)
    assert by_kind(events, "rep") == []
    assert len(by_kind(events, "cue_on")) == 2
    summary = by_kind(events, "set_summary")[0]
    assert summary["cues"] == 2 and summary["time_past_threshold_s"] > 0.5


def test_sets_and_faded_feedback_end_to_end(tmp_path):
    ev = tmp_path / "ev.jsonl"
    with Sim("--exercise", "single-leg-squat", "--drops", "8", "--reps", 8, "--rep-seconds", 2.5,
             "--speed", 6, "--seed", 4) as sim:
        r = run_host("--serial", sim.port, "--exercise", "single-leg-squat", "--set-reps", 4,
                     "--fade", "100:0", "--headless", "--mute", "--no-record", "--events", ev)
    assert r.returncode == 0, r.stderr
    events = events_of(ev)
    reps = by_kind(events, "rep")
    assert len(reps) == 8 and all(rep["cued"] for rep in reps)
    given = [rep["feedback_scheduled"] for rep in reps]
    assert not any(rep["feedback_given"] for rep in reps)  # --mute: no tone was played
    assert given[:4] == given[4:]  # the schedule restarts with each set
    assert given[0] is True and given[3] is False and sum(given[:4]) == 2
    assert [s["reps"] for s in by_kind(events, "set_summary")] == [4, 4]


# ---- the exercises of issue 13, each through the simulator over the pty ----

def run_mode(tmp_path, exercise, sim_args, host_args=(), stance="left"):
    ev = tmp_path / "ev.jsonl"
    with Sim("--exercise", exercise, "--stance", stance, "--speed", 6, "--seed", 4, "--mount-yaw", 30,
             *sim_args) as sim:
        r = run_host("--serial", sim.port, "--exercise", exercise, "--stance", stance, "--headless",
                     "--mute", "--no-record", "--events", ev, *host_args)
    assert r.returncode == 0, r.stderr
    events = events_of(ev)
    return r, events, by_kind(events, "rep")


def test_captain_morgan_is_a_sink_and_lift_with_the_target_chime(tmp_path):
    r, events, reps = run_mode(tmp_path, "captain-morgan", ["--drops", "3,8"])
    assert [rep["reached_target"] for rep in reps] == [False, True]
    assert all(rep["returned_to_level"] and rep["exercise"] == "captain-morgan" for rep in reps)
    assert [c["kind"] for c in by_kind(events, "cue_on")] == ["target"]
    assert "reached the target" in r.stdout


@pytest.mark.parametrize("exercise,swing", [("fire-hydrant", None), ("hip-swings", "front-back"),
                                            ("hip-swings", "circles")])
def test_free_leg_exercises_count_each_movement_and_flag_the_drops(tmp_path, exercise, swing):
    extra = ["--swing", swing] if swing else []
    _, events, reps = run_mode(tmp_path, exercise, ["--drops", "0,7,2,9", "--rep-seconds", 2.5, *extra],
                               ["--swing", swing] if swing else [], stance="right")
    assert len(reps) == 4                     # a rep with a level pelvis counts too
    assert [rep["cued"] for rep in reps] == [False, True, False, True]
    assert all(rep["max_turn_deg"] > 4 for rep in reps)
    assert all(c["kind"] == "fault" and c["low_side"] == "left" for c in by_kind(events, "cue_on"))


def test_lateral_step_down_counts_from_the_vertical_motion(tmp_path):
    _, events, reps = run_mode(tmp_path, "lateral-step-down", ["--drops", "2,8,3", "--rep-seconds", 3])
    assert len(reps) == 3
    assert [rep["cued"] for rep in reps] == [False, True, False]
    assert all(0.04 < rep["depth_m"] < 0.2 for rep in reps)   # the simulated step is 0.15 m
    assert reps[1]["max_drop_deg"] == pytest.approx(8.0, abs=0.8)


def test_pelvic_tilt_reps_hold_times_and_the_target(tmp_path):
    _, events, reps = run_mode(tmp_path, "pelvic-tilt", ["--tilts", "7,13", "--reps", 2, "--rep-seconds", 10],
                               ["--target-deg", 10])
    assert len(reps) == 2
    assert [rep["reached_target"] for rep in reps] == [False, True]
    assert reps[1]["max_forward_tilt_deg"] == pytest.approx(13.0, abs=1.0)
    # the simulated tilt stays at its peak for 40 % of the rep and is past 10 deg for 5.2 s in all
    assert reps[0]["hold_s"] == 0 and 4.6 < reps[1]["hold_s"] < 5.8
    assert all(rep["max_backward_tilt_deg"] > 1.5 for rep in reps)
    assert [c["kind"] for c in by_kind(events, "cue_on")] == ["target"]


def test_timed_hold_measures_each_hold(tmp_path):
    _, events, reps = run_mode(tmp_path, "timed-hold", ["--drops", "2,8", "--hold-s", 8, "--rest-s", 4],
                               ["--hold-s", 8, "--rest-s", 4])
    assert len(reps) == 2 and all(rep["hold_s"] == pytest.approx(8.0, abs=0.05) for rep in reps)
    assert [rep["drops_past"] for rep in reps] == [0, 1]
    assert reps[0]["time_within_band_s"] == pytest.approx(8.0, abs=0.05)
    assert 5.5 < reps[1]["time_within_band_s"] < 7.9
    assert [c["kind"] for c in by_kind(events, "cue_on")] == ["fault"]
