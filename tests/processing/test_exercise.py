"""Exercise logic on synthetic angle traces: reps, per-rep numbers, cue design (pure, no I/O)."""
import numpy as np
import pytest

from host.processing.exercise import Exercise, ExerciseConfig, fade_audible, summary_text

RATE = 200.0


def bump(depth, t_down=1.0, hold=0.3, t_up=1.0, rest=0.8, overshoot=0.0):
    """Free-side drop profile of one rep: down, hold, up (optionally above level), rest."""
    def ramp(a, b, n):
        u = np.linspace(0, 1, int(n * RATE), endpoint=False)
        return a + (b - a) * (u * u * (3 - 2 * u))
    return np.concatenate([ramp(0, depth, t_down), np.full(int(hold * RATE), depth),
                           ramp(depth, -overshoot, t_up), ramp(-overshoot, 0, 0.4),
                           np.zeros(int(rest * RATE))])


def run(cfg, drops, fwd=None):
    """Feed a free-side drop trace (stance left: free side right, drop = +obliquity)."""
    ex = Exercise(cfg)
    sign = 1.0 if cfg.free_side == "right" else -1.0
    fwd = np.zeros_like(drops) if fwd is None else fwd
    events = []
    for i, (d, f) in enumerate(zip(drops, fwd)):
        events += ex.update(i / RATE, sign * d, f)
    events += ex.end_set(len(drops) / RATE)
    return ex, events


def kinds(events, kind):
    return [e for e in events if e["event"] == kind]


def test_hip_dip_counts_on_return_and_reports_depth_and_rise_above_level():
    trace = np.concatenate([np.zeros(200), bump(3.0), bump(8.0, overshoot=1.5), bump(4.0)])
    ex, events = run(ExerciseConfig(exercise="hip-dip", threshold_right_deg=5.0), trace)
    reps = kinds(events, "rep")
    assert [r["index"] for r in reps] == [1, 2, 3]
    assert [r["depth_deg"] for r in reps] == pytest.approx([3.0, 8.0, 4.0], abs=0.05)
    assert [r["reached_target"] for r in reps] == [False, True, False]
    assert all(r["returned_to_level"] for r in reps)
    assert reps[1]["above_level_deg"] == pytest.approx(1.5, abs=0.1)
    assert reps[0]["above_level_deg"] < 0.1
    cues = kinds(events, "cue_on")
    assert len(cues) == 1 and cues[0]["kind"] == "target" and cues[0]["low_side"] == "right"
    summary = kinds(events, "set_summary")[0]
    assert summary["reps"] == 3 and summary["cued_reps"] == 1
    assert summary["worst_drop_deg"] == pytest.approx(8.0, abs=0.05)
    assert "3 reps, 1 reached the target" in summary_text(summary)


def test_hip_dip_that_dips_again_without_reaching_level():
    part = np.concatenate([bump(6.0)[:int(1.3 * RATE)], np.linspace(6, 2.5, 200), np.linspace(2.5, 6.5, 200)])
    trace = np.concatenate([np.zeros(100), part, np.linspace(6.5, 0, 300), np.zeros(300)])
    _, events = run(ExerciseConfig(exercise="hip-dip"), trace)
    reps = kinds(events, "rep")
    assert len(reps) == 2
    assert reps[0]["returned_to_level"] is False and reps[1]["returned_to_level"] is True


def test_hip_dip_still_down_at_the_end_of_the_set_is_incomplete_not_a_rep():
    # issue 10 item 2: a rep cut by the end of the set is reported, never counted
    trace = np.concatenate([np.zeros(100), np.linspace(0, 7, 300), np.full(100, 7.0)])
    _, events = run(ExerciseConfig(exercise="hip-dip"), trace)
    assert kinds(events, "rep") == []
    cut = kinds(events, "rep_incomplete")
    assert len(cut) == 1 and cut[0]["max_drop_deg"] == 7.0
    assert events[-1]["event"] == "set_summary" and events[-1]["reps"] == 0


def test_single_leg_squat_counts_reps_from_the_squat_even_with_no_drop():
    squat = bump(30.0)  # forward tilt profile
    fwd = np.concatenate([np.zeros(100), squat, squat])
    drops = np.concatenate([np.zeros(100), np.zeros_like(squat), bump(7.0)])
    _, events = run(ExerciseConfig(exercise="single-leg-squat", threshold_right_deg=5.0), drops, fwd)
    reps = kinds(events, "rep")
    assert len(reps) == 2
    assert reps[0]["cued"] is False and reps[0]["max_drop_deg"] == pytest.approx(0.0, abs=1e-6)
    assert reps[1]["cued"] is True and reps[1]["max_drop_deg"] == pytest.approx(7.0, abs=0.05)
    assert 0.3 < reps[1]["time_past_threshold_s"] < 1.5
    assert reps[1]["max_forward_tilt_deg"] == pytest.approx(30.0, abs=0.1)
    assert kinds(events, "cue_on")[0]["kind"] == "fault"


def test_keep_level_cues_without_reps():
    trace = np.concatenate([np.zeros(100), bump(7.0), bump(3.0), bump(9.0)])
    _, events = run(ExerciseConfig(exercise="keep-level"), trace)
    assert kinds(events, "rep") == []
    assert len(kinds(events, "cue_on")) == 2 and len(kinds(events, "cue_off")) == 2
    s = kinds(events, "set_summary")[0]
    assert s["cues"] == 2 and s["time_past_threshold_s"] > 0.5
    assert s["worst_drop_deg"] == pytest.approx(9.0, abs=0.05)


def test_hysteresis_and_minimum_on_time_stop_chatter():
    t = np.arange(0, 4, 1 / RATE)
    noisy = 5.0 + 0.4 * np.sin(2 * np.pi * 7 * t)  # hovering around the threshold
    _, events = run(ExerciseConfig(exercise="keep-level"), np.concatenate([np.zeros(50), noisy, np.zeros(200)]))
    assert len(kinds(events, "cue_on")) == 1 and len(kinds(events, "cue_off")) == 1
    spike = np.concatenate([np.zeros(50), [6.0], np.zeros(200)])
    _, events = run(ExerciseConfig(exercise="keep-level", min_on_s=0.25), spike)
    on, off = kinds(events, "cue_on")[0], kinds(events, "cue_off")[0]
    assert off["t"] - on["t"] == pytest.approx(0.25, abs=0.011)


def test_bandwidth_feedback_is_silent_inside_the_zone_and_sounds_outside_either_way():
    cfg = ExerciseConfig(exercise="keep-level", feedback="bandwidth", bandwidth_deg=2.0)
    trace = np.concatenate([np.zeros(50), bump(1.5), bump(3.0), -bump(3.0)])
    _, events = run(cfg, trace)
    cues = kinds(events, "cue_on")
    assert len(cues) == 2
    assert [c["low_side"] for c in cues] == ["right", "left"]
    with pytest.raises(ValueError, match="bandwidth"):
        ExerciseConfig(exercise="hip-dip", feedback="bandwidth")


def test_faded_feedback_gives_the_cue_on_a_falling_share_of_reps():
    cfg = ExerciseConfig(exercise="single-leg-squat", set_reps=10, fade_start=1.0, fade_end=0.2)
    audible = [fade_audible(k, cfg) for k in range(1, 11)]
    assert sum(audible) == 6  # mean share (1.0 + 0.2) / 2 over 10 reps
    assert audible[:2] == [True, True] and sum(audible[5:]) < sum(audible[:5])
    # through the exercise: every rep crosses the threshold, fewer are audible as the set goes on
    squat = bump(30.0)
    fwd = np.concatenate([np.zeros(50)] + [squat] * 10)
    drops = np.concatenate([np.zeros(50)] + [bump(7.0)] * 10)
    _, events = run(cfg, drops, fwd)
    reps = kinds(events, "rep")
    assert len(reps) == 10 and all(r["cued"] for r in reps)
    assert [r["feedback_scheduled"] for r in reps] == audible
    assert not any(r["feedback_given"] for r in reps)  # no sound output here: no tone was played
    assert [c["audible"] for c in kinds(events, "cue_on")] == audible
    with pytest.raises(ValueError, match="set-reps"):
        ExerciseConfig(fade_start=1.0, fade_end=0.5)


def test_sets_close_after_the_planned_reps():
    trace = np.concatenate([np.zeros(50)] + [bump(6.0)] * 5)
    _, events = run(ExerciseConfig(exercise="hip-dip", set_reps=2), trace)
    summaries = kinds(events, "set_summary")
    assert [s["reps"] for s in summaries] == [2, 2, 1]
    assert [r["set"] for r in kinds(events, "rep")] == [1, 1, 2, 2, 3]


def test_per_side_thresholds_follow_the_free_side():
    cfg = ExerciseConfig(exercise="keep-level", stance="right", threshold_left_deg=8.0, threshold_right_deg=3.0)
    _, events = run(cfg, np.concatenate([np.zeros(50), bump(6.0)]))  # left side drops 6
    assert kinds(events, "cue_on") == []
    cfg = ExerciseConfig(exercise="keep-level", stance="right", threshold_left_deg=4.0, threshold_right_deg=8.0)
    _, events = run(cfg, np.concatenate([np.zeros(50), bump(6.0)]))
    assert kinds(events, "cue_on")[0]["low_side"] == "left"


@pytest.mark.parametrize("kwargs", [dict(exercise="squat"), dict(stance="middle"),
                                    dict(threshold_left_deg=0.1), dict(feedback="loud")])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        ExerciseConfig(**kwargs)
