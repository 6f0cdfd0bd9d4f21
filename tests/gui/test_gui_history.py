"""The history window (patient picker, session table, progress chart, session review with a time slider,
replay through the live window) and the live window's patient field, drawn for real offscreen through
pytest-qt, on a real SQLite database recorded here: the simulator's firmware (firmware_sim SimDevice)
encodes each scripted set, runner.StreamRunner runs the live pipeline on its frames, and the real Recorder
writes them from its own thread. Expected numbers come from that live run (its reps and per-sample
angle trace), not from the code under test.
"""
from __future__ import annotations

import os

# Before anything creates a QApplication: tests draw offscreen whatever display the machine has.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import asyncio  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtCore, QtWidgets  # noqa: E402
from tests.support.simproc import ROOT, hiplevel  # noqa: E402

from firmware_sim.device import SimDevice  # noqa: E402
from firmware_sim.motion import Scenario  # noqa: E402
from host import store  # noqa: E402
from host.session.live_app import SessionControls  # noqa: E402
from host.processing.exercise import ExerciseConfig  # noqa: E402
from host.gui.live_window import MainWindow, describe_obliquity  # noqa: E402
from host.gui.qt_common import COLORS  # noqa: E402
from host.gui.history_window import HistoryWindow, run_history  # noqa: E402
from host.gui.review_model import threshold_steps  # noqa: E402
from host.gui.review_window import WINDOW_S, ReviewWindow  # noqa: E402
from host.sinks.live import LiveBuffer  # noqa: E402
from host.processing.pipeline import PipelineConfig  # noqa: E402
from host.sinks.recorder import Recorder, settings_of  # noqa: E402
from host.session.runner import StreamRunner  # noqa: E402
from host.links.memory import MemoryTransport  # noqa: E402

# (patient, exercise, stance, drops of the free side per rep, day the session is dated to)
SESSIONS = [
    ("P-017", "hip-dip", "left", [9, 7, 10, 8], "2026-10-01T09:30:00Z"),
    ("P-017", "hip-dip", "left", [8, 6.5, 7, 3], "2026-10-08T09:40:00Z"),
    ("P-017", "hip-dip", "left", [6.5, 3, 7, 3.5], "2026-10-15T10:00:00Z"),
    ("P-017", "hip-dip", "left", [4, 3, 3.5, 4], "2026-10-22T09:15:00Z"),
    ("P-017", "single-leg-squat", "right", [3, 7], "2026-10-22T09:35:00Z"),
    ("P-2", "hip-dip", "right", [7], "2026-10-20T14:00:00Z"),
]


def sim_frames(exercise, stance, drops, seed):
    sc = Scenario(exercise=exercise, stance=stance, drops_deg=drops)
    dev = SimDevice(sc, seed=seed)
    dev.streaming = True
    return [dev.info_frame()] + dev.frames_due(sc.duration_s + 1.0) + [dev.stop_frame()]


class ArrivingFrames(MemoryTransport):
    """The simulator's frames handed over at once (the test does not wait for real time) but stamped
    with the arrival times a real link gives them, one frame per frame period, so the recording keeps
    real-time host timing: that is what a paced replay follows."""

    def __init__(self, frames, period_s):
        super().__init__([(0.0, f) for f in frames])
        self.t0_host_s = 1000.0
        self.period_s = period_s

    async def read(self):
        item = await super().read()
        return None if item is None else (self.t0_host_s + self.current_index * self.period_s, item[1])


def record(db, patient, exercise, stance, drops, seed):
    """One live session (as fast as the pipeline goes) recorded by the real Recorder; returns what the
    live run saw: its reps and every traced sample's angle."""
    cfg = PipelineConfig(exercise=ExerciseConfig(exercise=exercise, stance=stance))
    messages = []
    rec = Recorder(db, patient, source="simulated sensor", report=messages.append)
    rec.start_block(settings_of(cfg))
    trace = {"t_device_us": [], "obliquity_deg": []}

    def tracer(seq, t_us, obl, fwd):
        trace["t_device_us"].append(t_us)
        trace["obliquity_deg"].append(obl)
    frames = sim_frames(exercise, stance, drops, seed)
    session = StreamRunner(ArrivingFrames(frames, 4 / 200), cfg, recorder=rec, trace=tracer)
    summary = asyncio.run(session.run())
    rec.marker("knee hurts", 20.0)   # a therapist's marker, as the window sets them
    line = rec.close()
    assert summary.ok and messages == [] and "Recorded as session" in line, (summary.reason, messages, line)
    t_s = (np.array(trace["t_device_us"], dtype=np.int64) - session.pipeline.t0_us) * 1e-6
    return {"id": rec.session_id, "reps": summary.reps, "t_s": t_s, "obliquity_deg": np.array(trace["obliquity_deg"])}


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    db = tmp_path_factory.mktemp("history") / "sessions.sqlite"
    runs = []
    for i, (patient, exercise, stance, drops, day) in enumerate(SESSIONS):
        runs.append(record(db, patient, exercise, stance, drops, seed=10 + i))
    # Recorded within seconds here; dated a week apart as a course of therapy would be.
    conn = sqlite3.connect(db)
    for run, (*_, day) in zip(runs, SESSIONS):
        conn.execute("UPDATE sessions SET started_utc = ? WHERE id = ?", (day, run["id"]))
    conn.commit()
    conn.close()
    return {"db": db, "runs": runs}


@pytest.fixture
def history(qtbot, rec):
    w = HistoryWindow(rec["db"])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    for r in w.reviews:
        r.close()


def table_column(w: HistoryWindow, col: int) -> list[str]:
    return [w.table.item(row, col).text() for row in range(w.table.rowCount())]


def open_review(qtbot, history: HistoryWindow, session_id: int) -> ReviewWindow:
    """Double-click the session's row, as a therapist would, and wait for the curve."""
    row = table_column(history, 0).index(str(session_id))
    rect = history.table.visualItemRect(history.table.item(row, 1))
    # (a click first: Qt's test double-click only counts after a press it has seen)
    qtbot.mouseClick(history.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(history.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    review = history.reviews[-1]
    assert review.session.id == session_id
    with qtbot.waitSignal(review.curve_ready, timeout=30000):
        pass
    return review


def image_array(widget) -> np.ndarray:
    from PySide6 import QtGui
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : 3 * w].reshape(h, w, 3).astype(int)


def near(pixels, rgb, tol=14) -> np.ndarray:
    return np.abs(pixels - np.array(rgb)).max(axis=-1) <= tol


def hex_rgb(color: str):
    return [int(color[i:i + 2], 16) for i in (1, 3, 5)]


# ----------------------------------------------------------------------------------------------------

def test_patient_picker_lists_patients_and_fills_the_session_table(qtbot, history, rec):
    w, runs = history, rec["runs"]
    assert [w.patient_combo.itemText(i) for i in range(w.patient_combo.count())] == ["P-017", "P-2"]
    # the patient of the latest session comes first; newest session at the top of the table
    assert w.patient_combo.currentText() == "P-017"
    assert table_column(w, 0) == ["5", "4", "3", "2", "1"]
    by_id = {r["id"]: r for r in runs}
    for row, sid in enumerate(int(x) for x in table_column(w, 0)):
        live_reps = by_id[sid]["reps"]
        assert w.table.item(row, 4).text() == str(len(live_reps))
        assert w.table.item(row, 5).text() == str(sum(1 for r in live_reps if r["cued"]))
        assert w.table.item(row, 8).text() == "complete"
    assert table_column(w, 2) == ["Single leg squat"] + ["Hip dip"] * 4
    assert table_column(w, 3) == ["right"] + ["left"] * 4
    first = runs[0]["reps"]   # stance left: every drop is on the right
    drops = [r["max_drop_deg"] for r in first]
    assert table_column(w, 6)[-1] == f"right {max(drops):.1f}°"
    assert table_column(w, 7)[-1] == f"right {sum(drops) / len(drops):.1f}°"
    assert "5 sessions" in w.summary_label.text() and "18 reps" in w.summary_label.text()

    # picking the other patient with the keyboard fills the table with theirs
    w.patient_combo.setFocus()
    qtbot.keyClick(w.patient_combo, QtCore.Qt.Key.Key_Down)
    assert w.patient_combo.currentText() == "P-2"
    (rep,) = runs[5]["reps"]
    assert table_column(w, 0) == ["6"]
    assert [w.table.item(0, c).text() for c in (3, 4, 5, 6)] == ["right", "1", "1" if rep["cued"] else "0",
                                                                 f"left {rep['max_drop_deg']:.1f}°"]


def test_progress_chart_holds_the_per_session_values(qtbot, history, rec):
    w = history
    conn = store.connect(rec["db"])
    rows = [r for r in store.progress(conn, "P-017") if r["exercise"] == "hip-dip"]
    conn.close()
    assert w.exercise_combo.currentData() == "hip-dip"   # the exercise with the most sessions
    x, worst = w.progress_curves[("right", "worst")].getData()
    _, mean = w.progress_curves[("right", "mean")].getData()
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    np.testing.assert_allclose(worst, [r["sides"]["right"]["worst_drop_deg"] for r in rows])
    np.testing.assert_allclose(mean, [r["sides"]["right"]["mean_drop_deg"] for r in rows])
    # ... which are the live runs' numbers: deepest and average rep per session
    live = [rec["runs"][i]["reps"] for i in range(4)]
    np.testing.assert_allclose(worst, [max(r["max_drop_deg"] for r in reps) for reps in live])
    np.testing.assert_allclose(mean, [np.mean([r["max_drop_deg"] for r in reps]) for reps in live])
    assert worst[0] > worst[-1] + 3                         # the patient improved over the weeks
    assert not w.progress_curves[("left", "worst")].isVisible()   # no left-hip reps in these sets
    assert "right hip low" in w.progress_legend.text() and "left hip" not in w.progress_legend.text()
    np.testing.assert_array_equal(w.reps_bars.opts["height"], [4, 4, 4, 4])
    np.testing.assert_array_equal(w.cued_bars.opts["height"], [sum(r["cued"] for r in reps) for reps in live])
    ticks = w.drop_plot.getPlotItem().getAxis("bottom")._tickLevels[0]
    assert [t[1] for t in ticks] == [store.local_time(r["started_utc"], "%d %b") for r in rows]
    # drawn: the right side's colour is on the chart, orange bars below
    pixels = image_array(w.drop_plot)
    assert near(pixels, hex_rgb("#c0392b"), 30).sum() > 200
    assert near(image_array(w.reps_plot), hex_rgb(COLORS["cue"]), 10).sum() > 500

    # the squat is charted on its own: one session, the left side (stance right)
    w.exercise_combo.setCurrentIndex(w.exercise_combo.findData("single-leg-squat"))
    x, worst = w.progress_curves[("left", "worst")].getData()
    np.testing.assert_array_equal(x, [1])
    assert worst[0] == max(r["max_drop_deg"] for r in rec["runs"][4]["reps"])
    assert not w.progress_curves[("right", "worst")].isVisible()


def test_review_computes_the_curve_and_the_slider_scrubs_a_10_s_window(qtbot, history, rec, tmp_path):
    run = rec["runs"][0]
    review = open_review(qtbot, history, run["id"])
    qtbot.addWidget(review)
    r = review.review
    # the curve is the live run's angle, sample for sample (replayed through the same pipeline)
    x, y = review.curve.getOriginalDataset()
    assert len(x) == len(run["t_s"]) > 2000
    np.testing.assert_allclose(x, run["t_s"], atol=1e-9)
    np.testing.assert_allclose(y, run["obliquity_deg"], atol=1e-9)
    assert "Same reps as recorded live" in r.comparison.sentence()
    # rep table, cue periods and limits as recorded
    assert review.rep_table.rowCount() == 4
    assert [review.rep_table.item(i, 3).text() for i in range(4)] == [f"{x['max_drop_deg']:.1f}°" for x in run["reps"]]
    assert len(r.cues) == sum(1 for x in run["reps"] if x["cued"]) == 4
    lx, ly = review.limit_curves["right"].getData()
    assert set(ly) == {5.0} and review.limit_curves["right"].opts["pen"].widthF() == 3   # free side
    assert set(review.limit_curves["left"].getData()[1]) == {-5.0}
    assert [m["label"] for m in r.markers] == ["knee hurts"]
    assert any(getattr(shape, "label", None) is not None and shape.label.toPlainText() == "knee hurts"
               and shape.value() == 20.0 for _, shape in review._shapes)

    # the slider to the deepest moment of rep 3: window around it, angle and rep in large text
    rep3 = run["reps"][2]
    inside = (run["t_s"] > rep3["t"] - rep3["duration_s"]) & (run["t_s"] <= rep3["t"])
    i = np.flatnonzero(inside)[np.argmax(run["obliquity_deg"][inside])]
    t = float(run["t_s"][i])
    review.slider.setValue(round(t * 1000))
    (x0, x1), _ = review.plot.getPlotItem().getViewBox().viewRange()
    assert x0 == pytest.approx(t - WINDOW_S / 2, abs=2e-3) and x1 == pytest.approx(t + WINDOW_S / 2, abs=2e-3)
    assert review.angle_label.text() == describe_obliquity(run["obliquity_deg"][i]) == \
        f"Right hip {rep3['max_drop_deg']:.0f}° low"
    assert review.angle_label.font().pointSize() >= 30
    # recorded with no sound output, so the record says no tone was played (issue 10 item 1)
    assert review.rep_label.text().startswith("Rep 3 of 4") and "cue kept silent" in review.rep_label.text()
    assert review.rep_table.currentRow() == 2
    # keyboard: Page Up moves a whole window on; the text follows
    review.slider.setFocus()
    qtbot.keyClick(review.slider, QtCore.Qt.Key.Key_PageUp)
    t2 = review.slider.value() / 1000
    assert t2 == pytest.approx(t + WINDOW_S, abs=2e-3) or t2 == pytest.approx(r.end_t_s, abs=2e-3)
    assert review.plot.getPlotItem().getViewBox().viewRange()[0][1] == pytest.approx(min(t2 + 5, r.end_t_s), abs=2e-3)
    assert f"at {t2:.1f} s" in review.time_label.text()
    # clicking a rep in the table goes there
    cell = review.rep_table.visualItemRect(review.rep_table.item(0, 0)).center()
    qtbot.mouseClick(review.rep_table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=cell)
    rep1 = run["reps"][0]
    assert review.time_s == pytest.approx(rep1["t"] - rep1["duration_s"] / 2, abs=1e-3)
    assert review.rep_label.text().startswith("Rep 1 of 4")
    # drawn: blue curve, the cue band around the cursor (grey, translucent over white: recorded
    # without a sound output, so no tone was played; issue 10 item 1)
    review.slider.setValue(round(t * 1000))
    review.grab().save(str(tmp_path / "review.png"))
    pixels = image_array(review.plot)
    assert near(pixels, hex_rgb(COLORS["curve"]), 30).sum() > 300
    assert near(pixels, (230, 230, 230), 6).sum() > 2000
    assert near(pixels, (251, 223, 185), 12).sum() == 0  # no band says a tone sounded


def test_limits_changed_during_a_block_are_drawn_as_steps(rec):
    conn = store.connect(rec["db"])
    block = store.get_session(conn, 1).blocks[0]
    conn.close()
    steps = threshold_steps(block, [{"event": "threshold_changed", "t": 10.0, "side": "right", "threshold_deg": 7.0},
                                    {"event": "threshold_changed", "t": 15.0, "side": "right", "threshold_deg": 4.0}],
                            30.0)
    np.testing.assert_array_equal(steps["right"][0], [0, 10, 10, 15, 15, 30])
    np.testing.assert_array_equal(steps["right"][1], [5, 5, 7, 7, 4, 4])
    np.testing.assert_array_equal(steps["left"][1], [5, 5])


def test_interrupted_session_before_calibration_is_reviewed_in_words(qtbot, tmp_path):
    db = tmp_path / "cut.sqlite"
    recorder = Recorder(db, "P-9", source="simulated sensor")
    recorder.start_block(settings_of(PipelineConfig()))
    frames = sim_frames("hip-dip", "left", [6], seed=4)[:150]   # 3 s: the app stopped while calibrating
    for i, frame in enumerate(frames):
        recorder.frame(1000.0 + i * 0.02, frame)
    recorder.close()
    w = HistoryWindow(db)
    qtbot.addWidget(w)
    w.show()
    assert table_column(w, 8) == ["interrupted"] and table_column(w, 4) == ["0"]
    review = open_review(qtbot, w, 1)
    qtbot.addWidget(review)
    assert "No angle data" in review.status_label.text() and "interrupted" in review.status_label.text()
    assert review.angle_label.text() == "Not calibrated"
    assert review.slider.maximum() == round(review.review.end_t_s * 1000) > 2500   # the 3 s recorded
    review.slider.setValue(2000)
    assert "at 2.0 s" in review.time_label.text()


def test_a_block_this_version_cannot_replay_is_said_in_words(qtbot, tmp_path):
    db = tmp_path / "newer.sqlite"
    recorder = Recorder(db, "P-9", source="simulated sensor")
    recorder.start_block({**settings_of(PipelineConfig()), "estimator": "kalman-9000"})  # from a newer version
    for i, frame in enumerate(sim_frames("hip-dip", "left", [6], seed=4)[:100]):
        recorder.frame(1000.0 + i * 0.02, frame)
    recorder.close()
    w = HistoryWindow(db)
    qtbot.addWidget(w)
    review = w.open_session(w.sessions[0])
    qtbot.addWidget(review)
    qtbot.waitUntil(lambda: review.angle_label.text() == "The recording cannot be shown", timeout=10000)
    assert "estimator 'kalman-9000'" in review.status_label.text() and "Traceback" not in review.status_label.text()
    assert not review.slider.isEnabled() and not review.replay_button.isEnabled()


def test_empty_database_says_so(qtbot, tmp_path):
    db = tmp_path / "empty.sqlite"
    store.connect(db, create=True).close()
    w = HistoryWindow(db)
    qtbot.addWidget(w)
    assert w.summary_label.text() == "No sessions recorded yet."
    assert w.table.rowCount() == 0 and not w.open_button.isEnabled() and w.patient_combo.count() == 0


def test_replay_button_plays_the_block_through_the_live_window(qtbot, history, rec):
    run = rec["runs"][5]
    history.patient_combo.setCurrentText("P-2")
    review = open_review(qtbot, history, run["id"])
    qtbot.addWidget(review)
    review.speed_combo.setCurrentIndex(review.speed_combo.findData(8.0))
    qtbot.mouseClick(review.replay_button, QtCore.Qt.MouseButton.LeftButton)
    ((window, session, thread, _conn),) = review.replays
    assert isinstance(window, MainWindow) and "8× speed" in window.windowTitle()
    qtbot.waitUntil(lambda: window.ended_banner.isVisible(), timeout=20000)
    assert window.reps_label.text() == "1" and window.redraws > 10
    assert session.summary.reps[0]["max_drop_deg"] == run["reps"][0]["max_drop_deg"]
    window.close()
    assert not thread.is_alive() and review.replays == []


def test_live_window_patient_field_relabels_the_recorded_session(qtbot, rec, tmp_path):
    db = tmp_path / "copy.sqlite"
    shutil.copy(rec["db"], db)
    recorder = Recorder(db, "default", source="simulated sensor")
    recorder.start_block(settings_of(PipelineConfig()))
    live = LiveBuffer()
    w = MainWindow(live, SessionControls(None, None, recorder), patients=recorder.known_patients(), patient="default")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    combo = w.patient_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["P-017", "P-2", "default"]
    assert combo.currentText() == "default" and "Recording as default" in w.patient_note.text()

    # a label that is too long is refused in words, and nothing changes
    combo.lineEdit().selectAll()
    qtbot.keyClicks(combo.lineEdit(), "x" * 41)
    qtbot.keyClick(combo.lineEdit(), QtCore.Qt.Key.Key_Return)
    assert "1 to 40 characters" in w.patient_note.text() and combo.currentText() == "default"
    assert recorder.patient == "default"
    # picking a known patient from the list
    combo.setFocus()
    qtbot.keyClick(combo, QtCore.Qt.Key.Key_Up)
    assert combo.currentText() == "P-2" and recorder.patient == "P-2"
    assert w.patient_note.text() == "Recording as P-2"
    # typing a new one
    combo.lineEdit().selectAll()
    qtbot.keyClicks(combo.lineEdit(), "P-044")
    qtbot.keyClick(combo.lineEdit(), QtCore.Qt.Key.Key_Return)
    assert recorder.patient == "P-044" and w.patient_note.text() == "Recording as P-044"
    assert combo.findText("P-044") >= 0

    for frame in sim_frames("hip-dip", "left", [6], seed=3)[:50]:
        recorder.frame(1.0, frame)
    line = recorder.close()
    assert "patient P-044" in line
    conn = store.connect(db)
    (s,) = store.list_sessions(conn, "P-044")
    assert s.id == recorder.session_id
    assert "default" not in store.list_patients(conn)   # left without sessions: removed
    assert len(store.list_sessions(conn, "P-017")) == 5  # the others untouched
    conn.close()


def test_live_window_marker_is_stored_with_the_recording(qtbot, tmp_path):
    # The window's "Mark this moment" button and its M key put a therapist's marker into the
    # recording at the sensor time of the latest sample (docs/sessions.md, markers table).
    db = tmp_path / "markers.sqlite"
    recorder = Recorder(db, "P-9", source="simulated sensor")
    recorder.start_block(settings_of(PipelineConfig()))
    session = StreamRunner(MemoryTransport([]), PipelineConfig(), recorder=recorder)
    frames = sim_frames("hip-dip", "left", [6], seed=4)
    k = 0
    while session.pipeline.t_s < 6.0:             # ~6 s of data, however the firmware batched it
        recorder.frame(1.0, frames[k])
        session.pipeline.feed_frame(session.decoder, frames[k])
        k += 1
    w = MainWindow(LiveBuffer(), SessionControls(session, None, recorder))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    t_first = session.pipeline.t_s
    qtbot.mouseClick(w.marker_button, QtCore.Qt.MouseButton.LeftButton)
    assert "Marker 1 set" in w.status_label.text()
    while session.pipeline.t_s < t_first + 1.0:
        session.pipeline.feed_frame(session.decoder, frames[k])
        k += 1
    t_second = session.pipeline.t_s
    qtbot.keyClick(w, QtCore.Qt.Key.Key_M)
    recorder.close()
    conn = store.connect(db)
    (s,) = store.list_sessions(conn, "P-9")
    marks = store.markers(conn, s.blocks[0].id)
    conn.close()
    assert [m["label"] for m in marks] == ["Marker 1", "Marker 2"]
    assert marks[0]["t_s"] == pytest.approx(t_first)
    assert marks[1]["t_s"] == pytest.approx(t_second)


def test_live_window_has_no_patient_field_when_not_recording(qtbot):
    w = MainWindow(LiveBuffer(), SessionControls(None, None, None))
    qtbot.addWidget(w)
    assert w.patient_combo is None


def test_run_history_shows_the_window_until_it_is_closed(qtbot, rec):
    seen = []

    def close():
        (w,) = [x for x in QtWidgets.QApplication.topLevelWidgets() if isinstance(x, HistoryWindow) and x.isVisible()]
        seen.append((w.patient_combo.currentText(), w.table.rowCount()))
        w.close()
    QtCore.QTimer.singleShot(300, close)
    assert run_history(rec["db"], "P-2") == 0
    assert seen == [("P-2", 1)]


def test_history_command_without_a_display_says_what_to_use(rec):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run(hiplevel("history", "--db", rec["db"]), capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "history window cannot open: no display was found" in r.stderr and "hiplevel sessions" in r.stderr
    r = subprocess.run(hiplevel("history", "--db", rec["db"], "--patient", "P-999"), capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=60)
    assert r.returncode == 2 and "no patient 'P-999' in the database (known: P-017, P-2)" in r.stderr
