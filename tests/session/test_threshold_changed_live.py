"""Issue 10 item 3: a threshold changed live is applied again at its moment by replay, export and
the report. A live session recorded into a real database: the simulator on a real pty, the live
StreamRunner and Recorder in this process (as under the window), the window's command
`SessionControls.set_threshold` sent from another thread; then `hiplevel replay`, `export` and
`report` as processes."""
import asyncio
import csv
import subprocess
import threading

from tests.support.simproc import ROOT, Sim, hiplevel

from host.links.serial import SerialTransport
from host.processing.exercise import ExerciseConfig
from host.processing.pipeline import PipelineConfig
from host.session.live_app import SessionControls
from host.session.runner import StreamRunner
from host.sinks.recorder import Recorder, settings_of


class _Steer:
    """The therapist raises the right threshold from 5 to 7 degrees once rep 1 is done."""

    def __init__(self):
        self.events, self.session = [], None

    def write(self, event):
        self.events.append(event)
        if event["event"] == "rep" and event["index"] == 1:
            threading.Thread(target=SessionControls(self.session, None).set_threshold, args=("right", 7.0)).start()


def test_threshold_changed_live_is_applied_by_replay_export_and_report(tmp_path):
    db = tmp_path / "s.sqlite"
    steer = _Steer()
    cfg = PipelineConfig(exercise=ExerciseConfig(threshold_left_deg=5, threshold_right_deg=5),
                         calibration="standing")
    rec = Recorder(db, "P-3", source="pty")
    rec.start_block(settings_of(cfg))
    try:
        # drops 6, 6, 8, 6: at 5 degrees all four are cued; at 7 (from rep 2 on) only rep 3
        with Sim("--drops", "6,6,8,6", "--speed", 4, "--seed", 21, "--bends", 0) as sim:
            session = StreamRunner(SerialTransport(sim.port), cfg, events=steer, recorder=rec)
            steer.session = session
            assert asyncio.run(session.run()).ok
    finally:
        rec.close()
    live = [e for e in steer.events if e["event"] == "rep"]
    assert [r["cued"] for r in live] == [True, False, True, False], live
    assert any(e["event"] == "threshold_changed" for e in steer.events)

    r = subprocess.run(hiplevel("replay", "1", "--fast", "--db", db), capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Same reps as recorded live (4 reps, 2 with the cue)" in r.stdout, r.stdout

    out = tmp_path / "csv"
    e = subprocess.run(hiplevel("export", "1", "--csv", out, "--db", db), capture_output=True, text=True, cwd=ROOT)
    assert e.returncode == 0, e.stderr
    blocks = list(csv.DictReader(open(out / "session-1-blocks.csv")))
    assert "7" in blocks[0]["threshold_changes"], blocks[0]

    f = tmp_path / "r.html"
    rep = subprocess.run(hiplevel("report", "1", "-o", f, "--db", db), capture_output=True, text=True, cwd=ROOT)
    assert rep.returncode == 0, rep.stderr
    html = f.read_text()
    assert "Differs from the live recording" not in html
    assert "threshold, right hip 7° low" in html  # the line ends at the limit set live
    assert "changed live" in html
