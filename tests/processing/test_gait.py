"""The live step detector and the walking calibration, in-process: the walking simulator
(firmware_sim.walking through firmware_sim.device, with sensor noise and mounting) straight into
the host's decoder and pipeline, scored against the simulator's per-step truth."""
import numpy as np
import pytest

from firmware_sim.device import SimDevice
from firmware_sim.motion import Scenario
from firmware_sim.walking import WalkScenario
from host.processing.exercise import ExerciseConfig
from host.processing.pipeline import Pipeline, PipelineConfig
from host.protocol.frames import SampleDecoder


def walk(scenario, exercise=None, loss=0.0, seed=1, yaw=0.0, tilt=None):
    dev = SimDevice(scenario, seed=seed, loss=loss, mount_yaw_deg=yaw, mount_tilt_deg=tilt)
    dev.streaming = True
    frames = [dev.info_frame()] + dev.frames_due(scenario.duration_s + 1.0)
    events = []
    pipe = Pipeline(PipelineConfig(exercise=exercise or ExerciseConfig(exercise="walk", threshold_left_deg=6.5,
                                                                       threshold_right_deg=6.5),
                                   calibration="walk"), emit=events.append)
    dec = SampleDecoder()
    for f in frames:
        pipe.feed_frame(dec, f)
    pipe.end_set()
    walk.device = dev
    return events


def matched_steps(events, truth):
    out = []
    for s in (e for e in events if e["event"] == "step"):
        tr = min(truth, key=lambda tr: abs(tr["contact_s"] - s["contact_t"]))
        assert abs(tr["contact_s"] - s["contact_t"]) < 0.05, s
        out.append((s, tr))
    return out


def test_tilted_belt_turned_to_the_side_walks_are_measured_per_step():
    sc = WalkScenario(gait="trendelenburg", weak_side="left", steps=20, seed=2)
    events = walk(sc, yaw=60.0, tilt=35.0)
    cal = [e for e in events if e["event"] == "calibrated"]
    assert len(cal) == 1 and cal[0]["method"] == "walk" and cal[0]["quality"] == "good"
    assert cal[0]["walk_agreement_deg"] < 5
    true_left_s = walk.device.mount[1]  # the pelvis's left axis in sensor coordinates
    found = np.array(cal[0]["left_axis_sensor"])
    assert np.degrees(np.arccos(found @ true_left_s)) < 3.0
    pairs = matched_steps(events, sc.steps_truth())
    assert len(pairs) == 20
    for s, tr in pairs:
        assert s["foot"] == tr["foot"] and s["swing_side"] == tr["swing_side"]
        assert s["drop_deg"] == pytest.approx(tr["drop_deg"], abs=0.5)
        assert s["cued"] == (tr["drop_deg"] > 6.5)
    # the steps before the calibration finished were caught up afterwards, silently
    early = [s for s, _ in pairs if s.get("during_calibration")]
    assert early and not any(s["feedback_scheduled"] or s["feedback_given"] for s in early)
    cues = [e for e in events if e["event"] == "cue_on"]
    assert all(c["low_side"] == "right" for c in cues)  # a weak left hip lets the right side drop
    summary = [e for e in events if e["event"] == "walk_summary"][0]
    assert summary["steps"] == 20 and summary["bouts"] == 1
    assert summary["right_drop_median_deg"] > 8.5 and summary["left_drop_median_deg"] < 6
    assert summary["asymmetry_deg"] < -3  # the right side drops more
    assert summary["cadence_spm"] == pytest.approx(60 / sc.step_s, rel=0.03)
    assert summary["past_threshold_share"] == pytest.approx(0.5, abs=0.05)


def test_a_pause_starts_a_new_bout_and_turns_make_no_steps():
    sc = WalkScenario(gait="normal", steps=20, turns=True, pause_s=3.0, seed=4)
    events = walk(sc, loss=0.05)
    pairs = matched_steps(events, sc.steps_truth())
    assert not any(tr["turning"] for _, tr in pairs)
    assert all(s["bout"] == tr["bout"] for s, tr in pairs)
    straight = [tr for tr in sc.steps_truth() if not tr["turning"]]
    assert len(pairs) >= len(straight) - 3  # slowing down for the pause may hide a contact or two
    summary = [e for e in events if e["event"] == "walk_summary"][0]
    assert summary["bouts"] == 2 and summary["turn_steps"] >= 3
    assert not any(s["cued"] for s, _ in pairs)


def test_standing_makes_no_steps_and_asks_to_walk():
    sc = Scenario(exercise="stand", drops_deg=[0.0] * 4, rep_s=3.0, calibration_bends=0)
    events = walk(sc)
    assert not [e for e in events if e["event"] in ("step", "calibrated")]


def test_faded_feedback_over_the_steps():
    sc = WalkScenario(gait="trendelenburg", weak_side="right", steps=24, seed=5)
    cfg = ExerciseConfig(exercise="walk", threshold_left_deg=6.5, threshold_right_deg=6.5,
                         fade_start=1.0, fade_end=0.0, set_reps=24)
    events = walk(sc, exercise=cfg)
    live = [e for e in events if e["event"] == "step" and e["cued"] and not e.get("during_calibration")]
    scheduled = [s["feedback_scheduled"] for s in live]
    assert scheduled and True in scheduled and False in scheduled
    # fading: the later steps get the audible cue less often than the earlier ones
    half = len(scheduled) // 2
    assert sum(scheduled[:half]) > sum(scheduled[half:])
    assert not any(s["feedback_given"] for s in live)  # no sound output here: no tone was played


def test_a_walk_ended_by_the_user_then_walking_on_is_a_new_walk():
    sc = WalkScenario(gait="trendelenburg", weak_side="right", steps=30, seed=6)
    dev = SimDevice(sc, seed=1)
    dev.streaming = True
    frames = [dev.info_frame()] + dev.frames_due(sc.duration_s + 1.0)
    events = []
    pipe = Pipeline(PipelineConfig(exercise=ExerciseConfig(exercise="walk", threshold_left_deg=6.5,
                                                           threshold_right_deg=6.5), calibration="walk"),
                    emit=events.append)
    dec = SampleDecoder()
    half = len(frames) * 2 // 3
    for f in frames[:half]:
        pipe.feed_frame(dec, f)
    pipe.end_set(by_user=True)
    pipe.end_set(by_user=True)  # nothing walked since: no second summary
    for f in frames[half:]:
        pipe.feed_frame(dec, f)
    pipe.end_set()
    summaries = [e for e in events if e["event"] == "walk_summary"]
    steps = [e for e in events if e["event"] == "step"]
    assert len(summaries) == 2 and summaries[0]["ended_by"] == "user" and "ended_by" not in summaries[1]
    first = [s for s in steps if s["t"] <= summaries[0]["t"]]
    assert summaries[0]["steps"] == len(first) > 5
    assert summaries[1]["steps"] == len(steps) - len(first) > 3
