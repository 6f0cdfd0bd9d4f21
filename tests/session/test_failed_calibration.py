"""Issue 10 item 5: a calibration that never finishes is said (summary, `end` event, report), the
recording keeps the exercise, and a replay can calibrate from the recording. The simulator on a
real pty does no calibration bends (`--bends 0`) while `hiplevel run` asks for them (the default
`--calibration bends`); then `replay --calibration standing` and `report` on the real database."""
import json
import subprocess

from tests.support.simproc import ROOT, Sim, hiplevel, run_host

from host import store


def test_failed_calibration_is_said_kept_and_replay_can_calibrate(tmp_path):
    ev, db = tmp_path / "ev.jsonl", tmp_path / "s.sqlite"
    with Sim("--drops", "7", "--reps", 4, "--speed", 8, "--seed", 4, "--bends", 0) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--db", db, "--events", ev)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Calibration never finished" in r.stdout and "--calibration standing" in r.stdout, r.stdout
    end = [json.loads(x) for x in open(ev)][-1]
    assert end["event"] == "end" and end["calibrated"] is False and end["calibration_failures"] >= 1
    assert end["reps"] == 0
    conn = store.connect(db, writable=False)
    try:
        (s,) = store.list_sessions(conn)
        assert s.blocks[0].frame_count > 800  # the exercise after the failed calibration is kept
    finally:
        conn.close()

    rep = subprocess.run(hiplevel("report", "1", "-o", tmp_path / "r.html", "--db", db),
                         capture_output=True, text=True, cwd=ROOT)
    assert rep.returncode == 0, rep.stderr
    assert "Calibration never finished" in (tmp_path / "r.html").read_text()

    out = subprocess.run(hiplevel("replay", "1", "--fast", "--calibration", "standing", "--db", db),
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Re-analysing with" in out.stdout and "standing" in out.stdout
    assert "replay 4 reps" in out.stdout, out.stdout  # the reps the live run could not count
