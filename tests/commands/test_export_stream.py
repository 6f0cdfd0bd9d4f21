"""`hiplevel export` streams: its memory does not grow with the session's length, and a cue still
on when the block ended is marked as store.cue_periods says (it ends at the last sample)."""
import csv
import io
import tracemalloc
from types import SimpleNamespace

import numpy as np

import host.links.replay  # noqa: F401 - imported by the command; loaded here so it is not counted
import host.session.runner  # noqa: F401
from host import store
from host.bench.memory import record_session
from host.commands import export


def _peak_of_export(tmp_path, seconds: float) -> int:
    """Peak Python memory of `hiplevel export` (tracemalloc: from the start of the command, the
    modules it imports being already loaded)."""
    db = tmp_path / f"{seconds:g}.sqlite"
    record_session(db, seconds)  # the simulator's frames through the real Recorder into a real file
    args = SimpleNamespace(session="1", csv=str(tmp_path / f"csv{seconds:g}"), block=None, db=str(db))
    tracemalloc.start()
    try:
        assert export.run(args) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_export_memory_does_not_grow_with_the_session(tmp_path, monkeypatch):
    # frames are read from the database a chunk at a time: with smaller reads, both sessions are
    # many reads long and the test stays short (a 60-minute session: hiplevel bench memory)
    monkeypatch.setattr(store, "FRAME_CHUNK", 256)
    short, long = _peak_of_export(tmp_path, 20.0), _peak_of_export(tmp_path, 60.0)
    rows = sum(1 for _ in open(tmp_path / "csv60" / "session-1-samples.csv"))
    assert rows > 2.8 * sum(1 for _ in open(tmp_path / "csv20" / "session-1-samples.csv"))
    # three times the samples; holding them (as the export did before it streamed) grows with them
    assert long < 1.3 * short, (short, long)


def test_an_open_cue_ends_at_the_last_sample():
    t_s = np.arange(0.0, 1.0, 0.1)
    n = len(t_s)
    batch = (np.arange(n), (t_s * 1e6).astype(np.int64), t_s, t_s + 100.0, np.zeros((n, 3)), np.zeros((n, 3)))
    events = [{"event": "cue_on", "t": 0.15}, {"event": "cue_off", "t": 0.35}, {"event": "cue_on", "t": 0.55}]
    out = io.StringIO()
    periods = store.cue_periods(events, float("inf"))
    rows = export.SampleRows(csv.writer(out), 1, [batch], periods, open_cue=True)
    rows.angle(3, int(batch[1][3]), 1.0, 2.0)
    rows.finish()
    got = list(csv.reader(io.StringIO(out.getvalue())))
    assert [r[-1] for r in got] == ["0", "0", "1", "1", "0", "0", "1", "1", "1", "0"]
    ref = [any(a - 1e-6 <= t < b - 1e-6 for a, b in store.cue_periods(events, float(t_s[-1]))) for t in t_s]
    assert [r[-1] for r in got] == [str(int(x)) for x in ref]
    assert [r[11] for r in got][2:5] == ["", "1.00000", ""]  # angles only where the replay gave them
