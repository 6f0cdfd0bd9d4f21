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
