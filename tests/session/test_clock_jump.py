"""Issue 10 item 10: a device clock that jumps back (here 5 s, mid-rep) must give an event and no
negative durations. The simulator (`--clock-jump`) on a real pty, `hiplevel run` as a process."""
import json

from tests.support.simproc import Sim, run_host


def test_device_clock_jumping_back_gives_an_event_and_no_negative_durations(tmp_path):
    ev = tmp_path / "ev.jsonl"
    # reps of 3.5 s after ~2 s standing: 9 s into the stream is in the middle of rep 2
    with Sim("--drops", "7", "--reps", 4, "--speed", 4, "--seed", 4, "--bends", 0,
             "--clock-jump", "9.0:-5") as sim:
        r = run_host("--serial", sim.port, "--calibration", "standing", "--headless", "--mute",
                     "--no-record", "--events", ev)
    assert r.returncode == 0, r.stdout + r.stderr
    events = [json.loads(x) for x in open(ev)]
    jumps = [e for e in events if e["event"] == "clock_jump"]
    assert len(jumps) == 1 and -5.1 < jumps[0]["jump_s"] < -4.9, jumps
    reps = [e for e in events if e["event"] == "rep"]
    assert len(reps) == 4 and all(0 < x["duration_s"] < 6 for x in reps), reps
    # the session's time axis goes on: event times never go back
    t = [e["t"] for e in events if "t" in e]
    assert all(b >= a for a, b in zip(t, t[1:])), t
    end = events[-1]
    assert end["lost_samples"] == 0 and 16 < end["t"] < 19
    assert "clock" in r.stdout.lower()
