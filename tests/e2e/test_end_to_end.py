"""Simulated sensor process -> real pseudo-terminal -> `hiplevel run` process, against ground truth."""
import json
import signal
import subprocess
import time

import numpy as np
import pytest
from tests.support.simproc import ROOT, Sim, hiplevel, run_host


def read_events(path):
    return [json.loads(line) for line in open(path)]


def truth_and_angles(truth_path, angles_path):
    truth = np.genfromtxt(truth_path, delimiter=",", names=True)
    ang = np.genfromtxt(angles_path, delimiter=",", names=True)
    row = {int(s): i for i, s in enumerate(truth["seq"])}
    idx = np.array([row[int(s)] for s in ang["seq"]])
    return truth, ang, idx


@pytest.mark.parametrize("stance", ["left", "right"])
def test_hip_dips_cue_on_reps_2_and_4_and_match_truth(tmp_path, stance):
    ev, ang, truth = tmp_path / "ev.jsonl", tmp_path / "ang.csv", tmp_path / "truth.csv"
    with Sim("--drops", "3,8,4,9", "--stance", stance, "--speed", 4, "--seed", 11, "--truth", truth) as sim:
        r = run_host("--serial", sim.port, "--stance", stance, "--threshold", 5, "--headless", "--mute",
                     "--events", ev, "--angles", ang)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    events = read_events(ev)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "connected" and kinds[1] == "calibrated" and kinds[-1] == "end"
    reps = [e for e in events if e["event"] == "rep"]
    assert [r["index"] for r in reps] == [1, 2, 3, 4]
    assert [r["cued"] for r in reps] == [False, True, False, True]
    assert kinds.count("cue_on") == 2 and kinds.count("cue_off") == 2
    free = "right" if stance == "left" else "left"
    assert all(e["low_side"] == free for e in events if e["event"] in ("rep", "cue_on"))
    # each cue_on falls inside rep 2 or rep 4 (between the previous rep event and its own)
    rep_t = [0.0] + [r["t"] for r in reps]
    for e in (e for e in events if e["event"] == "cue_on"):
        k = next(i for i in range(4) if rep_t[i] < e["t"] <= rep_t[i + 1])
        assert k + 1 in (2, 4)

    truth, ang, idx = truth_and_angles(truth, ang)
    sign = 1 if free == "right" else -1
    for i, rep in enumerate(reps):
        true_max = (sign * truth["obliquity_deg"][truth["rep"] == i]).max()
        assert abs(rep["max_drop_deg"] - true_max) < 0.5, (i, rep, true_max)
    err = ang["obliquity_deg"] - truth["obliquity_deg"][idx]
    rmse = float(np.sqrt(np.mean(err ** 2)))
    print(f"obliquity RMSE vs truth: {rmse:.3f} deg over {len(err)} samples")
    assert rmse < 0.5
    end = events[-1]
    assert end["lost_samples"] == 0 and end["samples"] == len(truth)
    assert np.all(np.diff(ang["seq"]) == 1)  # an angle for every sample after calibration
    # --mute: the cue was due on 2 reps, and the summary says no tone was played (issue 10 item 1)
    assert "Reps: 4 (2 with the cue; 2 of them without a tone" in r.stdout


def test_corrupt_frames_are_counted_and_skipped(tmp_path):
    ev = tmp_path / "ev.jsonl"
    with Sim("--drops", "6,6", "--speed", 4, "--corrupt", 0.05, "--seed", 3) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--events", ev)
    assert r.returncode == 0, r.stderr
    end = read_events(ev)[-1]
    assert end["event"] == "end" and sum(end["frame_errors"].values()) > 5
    assert end["lost_samples"] > 0  # the skipped frames show as a gap, not as a jump in time
    gaps = [e for e in read_events(ev) if e["event"] == "gap"]
    assert sum(g["lost_samples"] for g in gaps) == end["lost_samples"]
    assert end["reps"] == 2
    assert "damaged frames skipped" in r.stdout


def test_sensor_vanishing_mid_stream_gets_a_clear_message(tmp_path):
    ev = tmp_path / "ev.jsonl"
    sim = Sim("--drops", "6,6,6,6,6,6", "--speed", 1)
    host = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--headless", "--mute", "--events", ev),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(4.0)
    sim.proc.send_signal(signal.SIGKILL)
    sim.stop()
    out, err = host.communicate(timeout=30)
    assert host.returncode == 1
    assert "Traceback" not in err
    assert "lost the sensor" in out and sim.port in out
    events = read_events(ev)
    assert events[-1]["event"] == "end" and "lost the sensor" in events[-1]["reason"]
    assert events[-1]["samples"] > 400  # what arrived before is kept


def test_port_that_does_not_exist():
    r = run_host("--serial", "/dev/does-not-exist", "--headless", "--mute")
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,words", [
    (["run", "--serial", "/dev/null", "--threshold", "40"], "threshold from 2 to 15 degrees"),
    (["run", "--threshold", "5"], "--serial"),
    (["sim", "--drops", "3,x"], "--drops wants degrees"),
    (["sim", "--loss", "2"], "fraction"),
    (["sim", "--rate", "123"], "the chip runs at 52, 104, 208, 416 Hz"),
])
def test_wrong_command_line_values_get_clear_errors(args, words):
    r = subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr


def test_every_command_and_benchmark_builds_its_help():
    from host.bench import BENCHES
    from host.cli import COMMANDS
    for words in [[name] for name in COMMANDS if name != "bench"] + [["bench", k] for k in BENCHES]:
        r = subprocess.run(hiplevel(*words, "--help"), capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 0 and "usage: hiplevel" in r.stdout, (words, r.stderr)
    assert {"reps", "latency", "accuracy", "pipeline", "replay", "calibration"} <= set(BENCHES)
