"""The whole app against the simulator speaking a third-party sensor's protocol on the virtual radio
(`hiplevel sim --link ble --as dot|movesense` -> `hiplevel run --ble ADDRESS`): the driver is picked
from the advertisement (or named with --sensor), a hip-dip set is counted right (reps, cues), lost
notifications show as gaps exactly where the simulator dropped them, and after a dropout the app
reconnects and subscribes again. The simulator's truth file says which samples it lost."""
import json
import signal
import subprocess
import time

import numpy as np

from tests.support.simproc import ROOT, SimProcess, hiplevel

DROPS = "3,8,4,9"   # threshold 5: reps 2 and 4 cued


def _events(path):
    return [json.loads(line) for line in open(path)]


def _check_gaps(events, truth_path, rate_hz, dropout_min_samples=0):
    """Every sample the simulator lost is in a gap the app reported, and every small gap holds
    exactly the samples the simulator lost there (times: the session's, from the first sample)."""
    truth = np.genfromtxt(truth_path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    t0_us = truth["t_device_us"][truth["sent"] == 1][0]
    t_s = (truth["t_device_us"] - t0_us) * 1e-6
    gaps = [e for e in events if e["event"] == "gap"]
    end = events[-1]
    assert sum(g["lost_samples"] for g in gaps) == end["lost_samples"]
    windows = [(g["t"] - (g["lost_samples"] + 0.5) / rate_hz, g["t"] - 0.5 / rate_hz, g) for g in gaps]
    last_t = t_s[truth["sent"] == 1][-1]  # lost before the first or after the last sent: no gap
    lost_t = t_s[(truth["sent"] == 0) & (t_s > 0) & (t_s < last_t)]
    assert len(lost_t) > 0, "the simulator lost nothing: the test checks nothing"
    for t in lost_t:
        assert any(a <= t <= b for a, b, _ in windows), f"a sample lost at {t:.3f} s is in no gap"
    small = [(a, b, g) for a, b, g in windows if g["lost_samples"] < 30]
    for a, b, g in small:
        assert g["lost_samples"] == np.count_nonzero((lost_t >= a) & (lost_t <= b)), g
    big = [g for _, _, g in windows if g["lost_samples"] >= 30]
    if dropout_min_samples:
        assert len(big) == 1 and big[0]["lost_samples"] >= dropout_min_samples, big
    return gaps


def test_movella_dot_hip_dip_set_with_lost_notifications_and_a_dropout(tmp_path):
    ev, truth = tmp_path / "ev.jsonl", tmp_path / "truth.csv"
    # calibration from the first still phase; the dropout falls in the 8 s of standing still that
    # two bends of 0 degrees make before the reps
    sim = SimProcess(["--link", "ble", "--as", "dot", "--drops", DROPS, "--bend-deg", 0, "--speed", 2, "--loss", 0.02,
                      "--dropout-at", 5, "--dropout-for", 2, "--truth", truth, "--seed", 3], "ble", 2)
    address, hci = sim.where
    try:
        r = subprocess.run(hiplevel("run", "--ble", address, "--ble-hci", hci, "--calibration", "standing",
                                    "--headless", "--mute", "--no-record", "--events", ev),
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        sim.stop()
    assert r.returncode == 0, r.stderr + r.stdout
    events = _events(ev)
    kinds = [e["event"] for e in events]
    assert kinds.count("disconnected") == 1 and kinds.count("connected") == 2
    assert all(e["sensor"] == "dot" for e in events if e["event"] == "connected")  # from its advertisement
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "the sensor finished the set"
    reps = [e for e in events if e["event"] == "rep"]
    assert [round(r["max_drop_deg"]) for r in reps] == [3, 8, 4, 9]
    assert [r["cued"] for r in reps] == [False, True, False, True]
    assert kinds.count("cue_on") == 2
    # the reconnect subscribed again: samples came after it, the dropout is one gap of >= 2 s
    i_back = max(i for i, k in enumerate(kinds) if k == "connected")
    assert any(k == "rep" for k in kinds[i_back:])
    _check_gaps(events, truth, 60, dropout_min_samples=2 * 60)
    assert "Samples:" in r.stdout and "lost:" in r.stdout


def test_movesense_at_208_hz_named_with_sensor_and_ended_by_ctrl_c(tmp_path):
    ev, truth = tmp_path / "ev.jsonl", tmp_path / "truth.csv"
    sim = SimProcess(["--link", "ble", "--as", "movesense", "--drops", DROPS, "--bends", 0, "--speed", 2,
                      "--loss", 0.02, "--truth", truth, "--seed", 4], "ble", 2)
    address, hci = sim.where
    app = subprocess.Popen(hiplevel("run", "--ble", address, "--ble-hci", hci, "--sensor", "movesense",
                                    "--sensor-rate", 208, "--calibration", "standing", "--headless",
                                    "--mute", "--no-record", "--events", ev),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        sim.proc.wait(60)  # the scenario is over: a Movesense then goes off the air
        time.sleep(0.5)
        app.send_signal(signal.SIGINT)  # how a user ends a session with a sensor that never says stop
        out, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
        sim.stop()
    assert app.returncode == 0, err + out
    events = _events(ev)
    connected = next(e for e in events if e["event"] == "connected")
    assert connected["sensor"] == "movesense" and connected["address"] == address
    end = events[-1]
    assert end["event"] == "end" and end["reason"] == "ended by the user"
    reps = [e for e in events if e["event"] == "rep"]
    assert [round(r["max_drop_deg"]) for r in reps] == [3, 8, 4, 9]
    assert [r["cued"] for r in reps] == [False, True, False, True]
    # 208 Hz end to end: the samples and the lost ones fill the stream's duration
    truth_rows = np.genfromtxt(truth, delimiter=",", names=True, dtype=None, encoding="utf-8")
    dur_s = (truth_rows["t_device_us"][-1] - truth_rows["t_device_us"][0]) * 1e-6
    assert abs((end["samples"] + end["lost_samples"]) / dur_s - 208) < 3
    gaps = _check_gaps(events, truth, 208)
    assert all(g["lost_samples"] % 8 == 0 for g in gaps)  # whole notifications of 8 samples
