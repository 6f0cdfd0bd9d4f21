"""Issue 10 item 6: a simulator run faster than real time (`sim --speed 4`) is a simulation, not a
clock 3 million ppm fast, and the session's length is the sensor's time. Real pty, `hiplevel run`
recording into a real database, `hiplevel sessions` as processes."""
import json
import subprocess

from tests.support.simproc import ROOT, Sim, hiplevel, run_host


def test_speed_factor_is_not_reported_as_clock_drift_and_length_is_sensor_time(tmp_path):
    ev, db = tmp_path / "ev.jsonl", tmp_path / "s.sqlite"
    with Sim("--drops", "6", "--reps", 6, "--speed", 4, "--seed", 2, "--bends", 0, "--clock-ppm", 30) as sim:
        r = run_host("--serial", sim.port, "--calibration", "standing", "--headless", "--mute",
                     "--db", db, "--events", ev)
    assert r.returncode == 0, r.stdout + r.stderr
    end = [json.loads(x) for x in open(ev)][-1]
    assert end["event"] == "end"
    assert end["clock_drift_ppm"] is None, end            # not 3 million ppm
    assert 3.8 < end["time_scale"] < 4.2, end
    assert end["t"] > 20                                  # device seconds of data
    out = subprocess.run(hiplevel("sessions", "--db", db), capture_output=True, text=True, cwd=ROOT).stdout
    head, row = out.splitlines()[0].split(), out.splitlines()[1].split()
    length = row[head.index("length") + 1]  # the date column is two words
    length_s = 60 * int(length.split(":")[0]) + int(length.split(":")[1])
    assert abs(length_s - end["t"]) <= 1, out           # sensor time, not the 6 s of host time
