"""`hiplevel sim --link ble` -> virtual radio -> `hiplevel run --ble`: the whole app over BLE,
through a dropout with backfill (the app's own bleak code on the bumble backend)."""
import json
import subprocess

import numpy as np
from tests.support.simproc import ROOT, SimProcess, hiplevel


def test_run_over_ble_through_a_dropout_keeps_every_sample(tmp_path):
    ev, ang = tmp_path / "ev.jsonl", tmp_path / "ang.csv"
    sim = SimProcess(["--link", "ble", "--drops", "3,8,4,9", "--bends", "0", "--speed", 2,
                      "--dropout-at", 6, "--dropout-for", 3], "ble", 2)
    name, hci = sim.where
    try:
        r = subprocess.run(hiplevel("run", "--ble", name, "--ble-hci", hci, "--calibration", "standing",
                                    "--headless", "--mute", "--no-record", "--events", ev, "--angles", ang),
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        sim.proc.kill()
        sim.proc.wait(5)
    assert r.returncode == 0, r.stderr + r.stdout
    events = [json.loads(line) for line in open(ev)]
    kinds = [e["event"] for e in events]
    assert kinds.count("disconnected") == 1 and kinds.count("connected") == 2
    backfill = next(e for e in events if e["event"] == "backfill")
    assert backfill["samples"] > 300  # ~3 s at 200 Hz re-sent after the reconnect
    end = events[-1]
    assert end["event"] == "end" and end["lost_samples"] == 0
    seq = np.genfromtxt(ang, delimiter=",", names=True)["seq"]
    assert np.all(np.diff(seq) == 1)  # the session's history has no hole
    reps = [e for e in events if e["event"] == "rep"]
    assert len(reps) == 4  # reps during the dropout count too, marked late
    assert any(e.get("late") for e in reps)
    late_cues = [e for e in events if e["event"] == "cue_on" and e.get("late")]
    assert all(not c["audible"] for c in late_cues)
