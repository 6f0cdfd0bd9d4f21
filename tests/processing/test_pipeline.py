"""The per-sample chain fed by the simulated sensor in-process (SimDevice -> decoder -> Pipeline)."""
import io

import numpy as np
import pytest

from firmware_sim.device import SimDevice
from firmware_sim.motion import Scenario
from host.processing.exercise import ExerciseConfig
from host.processing.pipeline import Pipeline, PipelineConfig
from host.protocol.frames import SampleDecoder


class RecordingCue:
    def __init__(self):
        self.calls = []

    def update(self, kind, on, audible, excess_deg, low_side):
        self.calls.append((kind, on))


def run(scenario, seed=0, exercise="keep-level", on_time=True, cue=None):
    truth = io.StringIO()
    dev = SimDevice(scenario, seed=seed, truth_file=truth)
    dev.streaming = True
    frames = [dev.info_frame()] + dev.frames_due(scenario.duration_s + 1)
    angles, events = {}, []
    pipe = Pipeline(PipelineConfig(exercise=ExerciseConfig(exercise=exercise)), emit=events.append,
                    cue=cue, trace=lambda seq, t, obl, fwd: angles.__setitem__(seq, obl))
    dec = SampleDecoder()
    for frame in frames:
        pipe.feed_frame(dec, frame, on_time=on_time)
    truth.seek(0)
    t = np.genfromtxt(truth, delimiter=",", names=True, dtype=None, encoding=None)
    true = dict(zip(t["seq"].tolist(), t["obliquity_deg"].tolist()))
    err = np.array([angles[s] - true[s] for s in angles])
    return float(np.sqrt(np.mean(err ** 2))), events, pipe


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standing_sway_is_not_learnt_as_gyro_bias(seed):
    # VQF's rest detector counts slow sway as rest; with its default bias clip it learnt the sway as
    # bias (0.5 deg RMSE). The pipeline removes the measured bias and clips VQF's estimate.
    rmse, _, _ = run(Scenario(exercise="stand", drops_deg=[0.0] * 10), seed=seed)
    assert rmse < 0.15


def test_late_samples_count_reps_but_never_reach_the_cue():
    cue = RecordingCue()
    _, events, _ = run(Scenario(exercise="hip-dip", drops_deg=[8.0, 8.0]), exercise="hip-dip",
                       on_time=False, cue=cue)
    reps = [e for e in events if e["event"] == "rep"]
    assert len(reps) == 2 and all(r["late"] for r in reps)
    assert all(not e["audible"] for e in events if e["event"] == "cue_on")
    assert cue.calls == []


def test_a_restarted_sensor_continues_the_time_axis():
    sc = Scenario(exercise="hip-dip", drops_deg=[6.0])
    _, _, pipe = run(sc)
    t_before = pipe.t_s
    dev = SimDevice(sc, seed=9)  # "rebooted": numbering and clock start again
    dev.streaming = True
    dec = SampleDecoder()
    dec.feed(dev.info_frame(), 0.0)
    pipe.restart_segment()
    pipe.process(dec.feed(dev.frames_due(0.1)[0], 0.0))
    assert t_before < pipe.t_s < t_before + 0.05
