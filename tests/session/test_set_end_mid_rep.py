"""Issue 10 item 2: "End this set" pressed mid-rep must not invent a rep. The simulated sensor on a
real pty, the live StreamRunner in this process (as under the window), and the window's command
(`SessionControls.end_set`) sent from another thread in the middle of a dip."""
import asyncio
import threading

from tests.support.simproc import Sim

from host.links.serial import SerialTransport
from host.processing.exercise import ExerciseConfig
from host.processing.pipeline import PipelineConfig
from host.session.live_app import SessionControls
from host.session.runner import StreamRunner


class _Log:
    """An event log that presses "End this set" (from another thread, as the window does) at the
    second cue: the free side is then deep in rep 2."""

    def __init__(self):
        self.events, self.session, self.cues = [], None, 0

    def write(self, event):
        self.events.append(event)
        if event["event"] == "cue_on":
            self.cues += 1
            if self.cues == 2:
                threading.Thread(target=SessionControls(self.session, None).end_set).start()


def test_end_set_mid_rep_never_counts_the_cut_rep():
    log = _Log()
    with Sim("--drops", "8", "--reps", 4, "--speed", 4, "--seed", 5, "--bends", 0) as sim:
        cfg = PipelineConfig(exercise=ExerciseConfig(threshold_left_deg=5, threshold_right_deg=5),
                             calibration="standing")
        session = StreamRunner(SerialTransport(sim.port), cfg, events=log)
        log.session = session
        summary = asyncio.run(session.run())
    assert summary.ok, summary.reason
    reps = [e for e in log.events if e["event"] == "rep"]
    sets = [e for e in log.events if e["event"] == "set_summary"]
    # rep 2 was cut by the end of set 1: neither its first half nor its second half is a rep
    assert len(reps) == 3, reps
    assert [s["reps"] for s in sets] == [1, 2], sets
    assert [r["set"] for r in reps] == [1, 2, 2]
    cut = [e for e in log.events if e["event"] == "rep_incomplete"]
    assert len(cut) == 1 and cut[0]["set"] == 1 and cut[0]["max_drop_deg"] > 5
    assert all(r["duration_s"] > 0 for r in reps)
    end = log.events[-1]
    assert end["event"] == "end" and end["reps"] == 3
