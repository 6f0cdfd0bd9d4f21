"""The live window, drawn for real: offscreen widgets through pytest-qt, and one real X window under Xvfb.

Offscreen tests feed a LiveBuffer, let the window's own timer tick, and check curves, lines, text and
controls, including pixels of widgets rendered with `grab()`. The Xvfb test runs tests/gui_window_script.py
(a 10 s soak at 200 samples/s through `run_gui` on the xcb platform), then checks a screenshot of the X
screen against positions computed here from data coordinates.
"""
from __future__ import annotations

import os

# Before anything creates a QApplication: tests draw offscreen whatever display the machine has.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import json  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtCore, QtGui  # noqa: E402

from host.gui.display import qt_display_available  # noqa: E402
from host.gui.live_window import MainWindow, describe_obliquity, format_event, run_gui  # noqa: E402
from host.gui.qt_common import COLORS  # noqa: E402
from host.sinks.sound_server import end_process  # noqa: E402
from host.sinks.live import LiveBuffer  # noqa: E402

from tests.support import gui_window_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "support" / "gui_window_script.py"
SOAK_S = 10.0


# ----------------------------------------------------------------------------------------------------
# helpers

def rgb(hex_color: str) -> np.ndarray:
    c = QtGui.QColor(hex_color)
    return np.array([c.red(), c.green(), c.blue()], dtype=int)


def image_array(image: QtGui.QImage) -> np.ndarray:
    """H x W x 3 int array of an image (copied out of Qt's padded rows)."""
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : 3 * w].reshape(h, w, 3).astype(int)


def color_mask(pixels: np.ndarray, hex_color: str, tol: int = 40) -> np.ndarray:
    return np.abs(pixels - rgb(hex_color)).max(axis=-1) <= tol


def feed(live: LiveBuffer, t_s: np.ndarray, obliquity_deg, forward_tilt_deg=None, cue_on=None):
    obliquity_deg = np.broadcast_to(obliquity_deg, t_s.shape)
    tilt = np.zeros_like(t_s) if forward_tilt_deg is None else np.broadcast_to(forward_tilt_deg, t_s.shape)
    cue = np.zeros(t_s.shape, bool) if cue_on is None else np.broadcast_to(cue_on, t_s.shape)
    for t, o, f, c in zip(t_s, obliquity_deg, tilt, cue):
        live.append(float(t), float(o), float(f), bool(c))


def wait_redraw(qtbot, window: MainWindow) -> None:
    """Wait for the window's own timer to pick up what was just fed (no direct refresh() call)."""
    before = window.redraws
    qtbot.waitUntil(lambda: window.redraws > before, timeout=2000)


def wait_tick(qtbot, window: MainWindow, ticks: int = 2) -> None:
    """Wait for a few timer ticks (status-only changes do not count as redraws)."""
    qtbot.wait(int(ticks * window.timer.interval() + 30))


class CommandLog(gui_window_script.Commands):
    """The commands interface the window drives; records what the GUI asked for, and can refuse
    to recalibrate like a sensor that is not streaming."""

    def __init__(self, fail_recalibrate: bool = False):
        super().__init__()
        self.fail_recalibrate = fail_recalibrate

    def recalibrate(self):
        if self.fail_recalibrate:
            raise RuntimeError("the sensor is not streaming")
        super().recalibrate()


@pytest.fixture
def live():
    return LiveBuffer()


@pytest.fixture
def make_window(qtbot):
    def make(live, commands=None):
        w = MainWindow(live, commands)
        qtbot.addWidget(w)
        w.resize(1200, 760)
        w.show()
        qtbot.waitExposed(w)
        w.activateWindow()
        qtbot.waitUntil(w.isActiveWindow, timeout=2000)   # keyboard focus only counts in the active window
        return w
    return make


# ----------------------------------------------------------------------------------------------------
# offscreen widgets

def test_curve_holds_the_last_10_s_on_a_fixed_relative_axis(qtbot, live, make_window):
    w = make_window(live)
    assert w.curve.getOriginalDataset()[0] is None or len(w.curve.getOriginalDataset()[0]) == 0

    rate_hz = 200.0
    t = np.arange(0, 15.0, 1 / rate_hz) + 100.0           # device seconds, not starting at 0
    obl = 8.0 * np.sin(2 * np.pi * 0.4 * t)
    cue = obl >= 5.0
    feed(live, t, obl, cue_on=cue)
    wait_redraw(qtbot, w)

    keep = t >= t[-1] - 10.0
    x, y = w.curve.getOriginalDataset()
    np.testing.assert_allclose(x, t[keep] - t[-1], atol=1e-9)
    np.testing.assert_allclose(y, obl[keep])
    assert x[0] == pytest.approx(-10.0) and x[-1] == 0.0
    cx, cy = w.cue_curve.getOriginalDataset()
    np.testing.assert_array_equal(np.isfinite(cy), cue[keep])
    np.testing.assert_allclose(cy[cue[keep]], obl[keep][cue[keep]])
    # The axis does not scroll: it stays -10 .. 0 whatever the device time.
    (x0, x1), (y0, y1) = w.plot.getPlotItem().getViewBox().viewRange()
    assert (x0, x1) == (-10.0, 0.0) and (y0, y1) == (-15.0, 15.0)

    # More data: the window follows the newest sample.
    t2 = np.arange(15.0, 16.0, 1 / rate_hz) + 100.0
    feed(live, t2, 2.0)
    wait_redraw(qtbot, w)
    t_all, obl_all = np.concatenate([t, t2]), np.concatenate([obl, np.full(len(t2), 2.0)])
    keep = t_all >= t_all[-1] - 10.0
    x, y = w.curve.getOriginalDataset()
    np.testing.assert_allclose(x, t_all[keep] - t_all[-1], atol=1e-9)
    np.testing.assert_allclose(y, obl_all[keep])

    # What the plot draws: curve blue, cue orange above the limit line, nothing orange below it.
    pixels = image_array(w.plot.grab().toImage())
    assert color_mask(pixels, COLORS["curve"]).sum() > 300
    cue_rows = np.nonzero(color_mask(pixels, COLORS["cue"]).any(axis=1))[0]
    vb = w.plot.getPlotItem().getViewBox()
    row_limit = w.plot.mapFromScene(vb.mapViewToScene(QtCore.QPointF(0, 5.0))).y()
    assert len(cue_rows) > 10 and cue_rows.max() <= row_limit + 4


def test_threshold_lines_follow_the_status_and_emphasise_the_free_side(qtbot, live, make_window):
    live.update_status(stance="left", threshold_left_deg=4.0, threshold_right_deg=6.0)
    w = make_window(live)
    wait_tick(qtbot, w)
    assert w.right_line.value() == 6.0 and w.left_line.value() == -4.0 and w.level_line.value() == 0.0
    assert w.right_line.pen.widthF() > w.left_line.pen.widthF()        # stance left: right side is free
    assert w.left_line.pen.style() == QtCore.Qt.PenStyle.DashLine
    assert "free side" in w._line_labels["right"].toPlainText()

    live.update_status(stance="right", threshold_left_deg=7.5, threshold_right_deg=3.0)
    wait_tick(qtbot, w)
    assert w.right_line.value() == 3.0 and w.left_line.value() == -7.5
    assert w.left_line.pen.widthF() > w.right_line.pen.widthF()
    assert w.left_line.pen.style() == QtCore.Qt.PenStyle.SolidLine
    assert "left hip limit 7.5°" in w._line_labels["left"].toPlainText()
    assert "chime when the left hip reaches 7.5° down" in w.exercise_label.text()  # hip dip: a target
    live.update_status(exercise="single-leg-squat")
    wait_tick(qtbot, w)
    assert "cue when the left hip drops past 7.5°" in w.exercise_label.text()      # squat: a fault limit


def test_y_axis_expands_for_large_angles_and_returns(qtbot, live, make_window):
    w = make_window(live)
    feed(live, np.arange(0, 2, 0.01), np.linspace(0, 22.0, 200))
    wait_redraw(qtbot, w)
    assert w.plot.getPlotItem().getViewBox().viewRange()[1] == [-25.0, 25.0]
    feed(live, np.arange(2, 14, 0.01), 1.0)      # the big angle scrolls out of the 10 s window
    wait_redraw(qtbot, w)
    assert w.plot.getPlotItem().getViewBox().viewRange()[1] == [-15.0, 15.0]


def test_forward_tilt_trace_is_off_by_default_and_toggles(qtbot, live, make_window):
    w = make_window(live)
    t = np.arange(0, 3, 0.005)
    feed(live, t, 1.0, forward_tilt_deg=np.cos(t) * 4)
    wait_redraw(qtbot, w)
    assert not w.tilt_curve.isVisible() and not w.tilt_check.isChecked()
    qtbot.mouseClick(w.tilt_check, QtCore.Qt.MouseButton.LeftButton,
                     pos=QtCore.QPoint(8, w.tilt_check.height() // 2))
    assert w.tilt_check.isChecked() and w.tilt_curve.isVisible()
    np.testing.assert_allclose(w.tilt_curve.getOriginalDataset()[1], np.cos(t) * 4)
    assert "forward tilt" in w.legend_label.text()
    assert color_mask(image_array(w.plot.grab().toImage()), COLORS["tilt"]).sum() > 100


@pytest.mark.parametrize("obliquity_deg, text", [
    (6.0, "Right hip 6° low"), (-3.2, "Left hip 3° low"), (0.4, "Level"), (-0.9, "Level"),
    (12.6, "Right hip 13° low"), (float("nan"), "–"),
])
def test_describe_obliquity(obliquity_deg, text):
    assert describe_obliquity(obliquity_deg) == text


def test_big_text_reps_cue_and_last_rep(qtbot, live, make_window):
    w = make_window(live)
    live.update_status(calibrated=True, obliquity_deg=6.0, cue_on=True, reps=12, link="streaming",
                       last_rep={"max_drop_deg": 7.94, "low_side": "right", "returned_to_level": True,
                                 "hold_s": 1.25, "custom_metric": 3})
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Right hip 6° low"
    assert w.reps_label.text() == "12"
    assert "CUE" in w.cue_label.text()
    rep = w.last_rep_label.text()
    for part in ("Deepest drop", "7.9°", "Low side", "right", "Back to level", "yes", "Hold", "1.2 s",
                 "Custom metric", ">3<"):
        assert part in rep, part
    assert w.angle_label.font().pointSize() >= 40 and w.reps_label.font().pointSize() >= 40
    assert w.rep_box.title() == "Last rep"
    # A full rep event: the first rows in the panel, all of them in the tooltip, numbers in the title.
    live.update_status(last_rep={"event": "rep", "t": 30.2, "index": 4, "set": 2, "exercise": "hip-dip",
                                 "low_side": "right", "max_drop_deg": 7.2, "duration_s": 2.3, "cued": True,
                                 "feedback_given": True, "time_past_threshold_s": 0.4, "depth_deg": 7.2,
                                 "reached_target": True, "returned_to_level": True, "above_level_deg": 1.1})
    wait_tick(qtbot, w)
    assert w.rep_box.title() == "Last rep (no. 4, set 2)"
    shown, everything = w.last_rep_label.text(), w.last_rep_label.toolTip()
    assert shown.count("<tr>") == 6 and "Deepest drop" in shown and "Low side" not in shown
    assert everything.count("<tr>") == 12 and "Low side" in everything
    assert w.set_box.isHidden()
    live.update_status(last_summary={"event": "set_summary", "set": 1, "reps": 12, "cued_reps": 3,
                                     "worst_drop_deg": 8.26, "average_drop_deg": 6.1})
    wait_tick(qtbot, w)
    assert not w.set_box.isHidden()
    for part in ("Worst drop", "8.3°", "Average drop", "6.1°", "Reps with a cue", ">3<"):
        assert part in w.last_set_label.text(), part
    # The cue indicator is drawn in the cue colour while the cue sounds.
    cue_pixels = image_array(w.cue_label.grab().toImage())
    assert color_mask(cue_pixels, COLORS["cue"], tol=10).mean() > 0.3

    live.update_status(obliquity_deg=-0.3, cue_on=False)
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Level" and w.cue_label.text() == "cue off"
    assert color_mask(image_array(w.cue_label.grab().toImage()), COLORS["cue"], tol=10).mean() < 0.01

    live.update_status(calibrating=True, calibrated=False, message="")
    wait_tick(qtbot, w)
    assert "Calibrating" in w.status_label.text()
    assert w.angle_label.text().startswith("Stand still")
    # the step the calibration asks for is the big text, not buried in the status line
    prompt = "Bend forward slowly from the hips, then come back up (1 of 2)…"
    live.update_status(message=prompt)
    wait_tick(qtbot, w)
    assert w.angle_label.text() == prompt and prompt not in w.status_label.text()


def test_format_event_orders_known_keys_and_keeps_unknown_ones():
    # A rep event as host.processing.exercise emits it, plus keys this window has never heard of.
    rep = {"event": "rep", "t": 12.5, "index": 4, "set": 1, "exercise": "hip-dip", "low_side": "right",
           "max_drop_deg": 6.04, "duration_s": 2.31, "cued": True, "feedback_given": False,
           "time_past_threshold_s": 0.42, "depth_deg": 6.04, "peak_time_ms": 812.0, "note": "slow",
           "unset": None}
    rows = format_event(rep)
    assert rows[:3] == [("Deepest drop", "6.0°"), ("Time past limit", "0.4 s"), ("Duration", "2.3 s")]
    assert ("Cue triggered", "yes") in rows and ("Tone played", "no") in rows
    assert ("Low side", "right") in rows and ("Rep number", "4") in rows
    assert rows[-2:] == [("Peak time", "812 ms"), ("Note", "slow")]
    assert not any(label in ("Event", "T", "Exercise", "Unset") for label, _ in rows)


def test_status_line_link_message_and_loss_colours(qtbot, live, make_window):
    w = make_window(live)
    live.update_status(link="streaming", message="Lift the right hip back to level.", samples=5000)
    wait_tick(qtbot, w)
    assert "Sensor connected" in w.status_label.text()
    assert "Lift the right hip back to level." in w.status_label.text()
    assert w.loss_label.isHidden() and w.loss_level == "ok"

    live.update_status(samples=10000, lost_samples=150)          # 1.5 % lost: amber
    wait_tick(qtbot, w)
    assert w.loss_level == "warning" and not w.loss_label.isHidden()
    assert "Lost 150 samples" in w.loss_label.text()
    amber = image_array(w.loss_label.grab().toImage())
    assert color_mask(amber, COLORS["warn_bg"], tol=10).mean() > 0.5

    live.update_status(samples=12000, lost_samples=1500)         # 10 % lost: red
    wait_tick(qtbot, w)
    assert w.loss_level == "bad"
    red = image_array(w.loss_label.grab().toImage())
    assert color_mask(red, COLORS["bad_bg"], tol=10).mean() > 0.5

    live.update_status(link="disconnected")
    wait_tick(qtbot, w)
    assert "Sensor disconnected" in w.status_label.text()


def test_controls_call_the_commands(qtbot, live, make_window):
    live.update_status(threshold_left_deg=4.0, threshold_right_deg=5.0)
    cmd = CommandLog()
    w = make_window(live, cmd)
    wait_tick(qtbot, w)
    spin = w.threshold_spins["right"]
    assert spin.value() == 5.0 and w.threshold_spins["left"].value() == 4.0
    assert (spin.minimum(), spin.maximum()) == (2.0, 15.0)

    spin.setFocus()
    qtbot.keyClick(spin, QtCore.Qt.Key.Key_Up)
    assert cmd.calls[-1] == ("set_threshold", "right", 5.5)
    w.threshold_spins["left"].setFocus()
    qtbot.keyClick(w.threshold_spins["left"], QtCore.Qt.Key.Key_Down)
    assert cmd.calls[-1] == ("set_threshold", "left", 3.5)

    qtbot.mouseClick(w.recalibrate_button, QtCore.Qt.MouseButton.LeftButton)
    assert cmd.calls[-1] == ("recalibrate",)
    qtbot.mouseClick(w.end_set_button, QtCore.Qt.MouseButton.LeftButton)
    assert cmd.calls[-1] == ("end_set",)
    qtbot.mouseClick(w.mute_check, QtCore.Qt.MouseButton.LeftButton,
                     pos=QtCore.QPoint(8, w.mute_check.height() // 2))
    assert cmd.calls[-1] == ("set_muted", True)
    wait_tick(qtbot, w)
    assert w.cue_label.text() == "cue muted"

    # The pipeline's own change shows in the spin box without being sent back as a new command.
    w.recalibrate_button.setFocus()
    n = len(cmd.calls)
    live.update_status(threshold_right_deg=9.0)
    wait_tick(qtbot, w)
    assert spin.value() == 9.0 and len(cmd.calls) == n


def test_spin_box_shows_what_the_pipeline_accepted(qtbot, live, make_window):
    class Clamping(CommandLog):          # like a pipeline that caps the right limit at 6 deg
        def set_threshold(self, side, deg):
            super().set_threshold(side, deg)
            live.update_status(**{f"threshold_{side}_deg": min(deg, 6.0)})

    live.update_status(threshold_right_deg=5.5)
    w = make_window(live, Clamping())
    spin = w.threshold_spins["right"]
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    for _ in range(3):
        qtbot.keyClick(spin, QtCore.Qt.Key.Key_Up)
    wait_tick(qtbot, w)
    assert spin.hasFocus() and spin.value() == 7.0  # left alone while the user is editing
    w.recalibrate_button.setFocus()
    qtbot.waitUntil(lambda: spin.value() == 6.0, timeout=2000)
    assert w.right_line.value() == 6.0


def test_failing_command_is_reported_in_words(qtbot, live, make_window):
    w = make_window(live, CommandLog(fail_recalibrate=True))
    qtbot.mouseClick(w.recalibrate_button, QtCore.Qt.MouseButton.LeftButton)
    assert "Could not recalibrate: the sensor is not streaming" in w.status_label.text()
    assert w.timer.isActive()


def test_only_offered_commands_get_controls(qtbot, live, make_window):
    assert make_window(live).threshold_spins == {}

    class OnlyRecalibrate:
        def __init__(self):
            self.n = 0

        def recalibrate(self):
            self.n += 1

    cmd = OnlyRecalibrate()
    w = make_window(live, cmd)
    assert w.threshold_spins == {} and w.mute_check is None
    qtbot.mouseClick(w.recalibrate_button, QtCore.Qt.MouseButton.LeftButton)
    assert cmd.n == 1


def test_ended_keeps_the_plot_and_shows_a_summary(qtbot, live, make_window):
    w = make_window(live, CommandLog())
    t = np.arange(0, 12, 0.005)
    feed(live, t, 3 * np.sin(t))
    live.update_status(reps=10, samples=len(t), lost_samples=4, link="ended", ended=True, cue_on=True,
                       last_summary={"event": "set_summary", "reps": 10, "worst_drop_deg": 9.0,
                                     "average_drop_deg": 6.44})
    qtbot.waitUntil(lambda: w.ended_banner.isVisible(), timeout=2000)
    text = w.ended_banner.text()
    for part in ("Session ended", "10 reps", "worst drop 9.0°", "average drop 6.4°", "4 lost"):
        assert part in text, part
    x, y = w.curve.getOriginalDataset()
    np.testing.assert_allclose(y, 3 * np.sin(t[t >= t[-1] - 10]))
    assert not w.timer.isActive()
    assert w.cue_label.text() == "cue off"
    assert not w.recalibrate_button.isEnabled() and not w.threshold_spins["left"].isEnabled()
    assert not w.end_set_button.isEnabled() and w.tilt_check.isEnabled()
    assert color_mask(image_array(w.plot.grab().toImage()), COLORS["curve"]).sum() > 300


def test_run_gui_starts_in_the_loop_and_stops_on_close(qapp, live):
    events = []

    def start():
        events.append(("start", QtCore.QThread.currentThread().loopLevel()))
        QtCore.QTimer.singleShot(300, close_all)

    def close_all():
        for widget in qapp.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                events.append(("title", widget.windowTitle()))
                widget.close()

    code = run_gui(live, start=start, stop=lambda: events.append(("stop",)), title="hiplevel test")
    assert code == 0
    assert events == [("start", 1), ("title", "hiplevel test"), ("stop",)]


def test_run_gui_closes_on_ctrl_c(qapp, live):
    stops = []
    before = signal.getsignal(signal.SIGINT)

    def start():
        QtCore.QTimer.singleShot(200, lambda: os.kill(os.getpid(), signal.SIGINT))

    assert run_gui(live, start=start, stop=lambda: stops.append(1)) == 0
    assert stops == [1]
    assert signal.getsignal(signal.SIGINT) is before         # the caller's handler is back


def test_run_gui_reraises_a_start_error_after_stopping(qapp, live):
    stops = []

    def start():
        raise ValueError("serial port /dev/ttyX does not exist")

    with pytest.raises(ValueError, match="does not exist"):
        run_gui(live, start=start, stop=lambda: stops.append(1))
    assert stops == [1]


def test_qt_display_available_without_a_display(monkeypatch, tmp_path):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("DISPLAY", ":0")
    assert qt_display_available() is False
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":4999")                    # nobody listens there
    assert qt_display_available() is False
    monkeypatch.delenv("DISPLAY")
    assert qt_display_available() is False
    # A listening compositor socket counts (a plain unix socket stands in: only connecting is checked).
    path = tmp_path / "wayland-test"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        monkeypatch.setenv("WAYLAND_DISPLAY", str(path))
        assert qt_display_available() is True
        monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")          # asked for X, and there is no X
        assert qt_display_available() is False
    finally:
        server.close()


# ----------------------------------------------------------------------------------------------------
# a real X window

@pytest.fixture(scope="module")
def xvfb_display(tmp_path_factory):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is not installed (apt-get install xvfb xauth; see the Makefile's sysdeps)")
    log_path = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    read_fd, write_fd = os.pipe()
    # -displayfd: the server picks a free display number itself and writes it once it accepts clients.
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
                                 "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=log, stderr=log)
    os.close(write_fd)
    try:
        # Xvfb writes the number and the newline separately, and dies if the pipe closes in between:
        # read up to the newline.
        reply = b""
        while not reply.endswith(b"\n") and select.select([read_fd], [], [], 15)[0]:
            chunk = os.read(read_fd, 64)
            if not chunk:
                break
            reply += chunk
        os.close(read_fd)
        number = reply.decode().strip()
        if not number.isdigit():
            pytest.fail(f"Xvfb did not start: {log_path.read_text(errors='replace')[-2000:]}")
        yield f":{number}"
    finally:
        end_process(proc)


def x_client_env(display: str, out) -> dict:
    """The environment of a child process that draws on `display` (xcb), with its own runtime dir."""
    runtime = out / "runtime"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=display, XDG_RUNTIME_DIR=str(runtime),
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


@pytest.fixture(scope="module")
def real_window_run(xvfb_display, tmp_path_factory):
    out = tmp_path_factory.mktemp("gui_real")
    env = x_client_env(xvfb_display, out)
    png, js = out / "screen.png", out / "result.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--png", str(png), "--json", str(js),
                           "--seconds", str(SOAK_S)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=SOAK_S + 60)
    result = json.loads(js.read_text()) if js.exists() else {}
    print(f"screenshot: {png}\nresult: {result}\nstderr: {proc.stderr[-3000:]}")
    return proc, result, png


def test_real_window_soak_under_xvfb(real_window_run, xvfb_display, monkeypatch):
    proc, result, _ = real_window_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "none_dealloc" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert result["platform"] == "xcb" and result["exit_code"] == 0
    assert result["stop_calls"] == 1                              # run_gui called stop() once on close
    # The feeder kept its 200 samples/s and the timer kept redrawing (counts, not a speed limit).
    assert result["samples_fed"] + result["lost"] >= 0.8 * 200 * result["soak_s"]
    assert result["redraws"] >= 5 * result["soak_s"]
    # The display the window used is the kind qt_display_available recognises.
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", xvfb_display)
    assert qt_display_available() is True


def test_real_window_screenshot_shows_curve_and_limit_lines(real_window_run):
    proc, result, png = real_window_run
    assert proc.returncode == 0 and png.exists(), proc.stderr[-3000:]
    image = QtGui.QImage(str(png))
    assert (image.width(), image.height()) == tuple(result["screen_px"]) == (1280, 800)
    assert result["device_pixel_ratio"] == 1.0
    pixels = image_array(image)

    x0, y0, x1, y1 = (int(round(v)) for v in result["view_rect_px"])
    (vx0, vx1), (vy0, vy1) = result["x_range"], result["y_range"]
    assert (vx0, vx1) == (-10.0, 0.0)
    area = pixels[y0:y1, x0:x1]
    colors = result["colors"]

    def row_of(deg: float) -> int:       # data -> screen row, from the plot area's edges and y range
        return int(round((vy1 - deg) / (vy1 - vy0) * (y1 - y0)))

    def line_fraction(mask: np.ndarray) -> np.ndarray:
        return mask.mean(axis=1)

    limit = color_mask(area, colors["limit"])
    frac = line_fraction(limit)
    right_row, left_row = row_of(result["threshold_right_deg"]), row_of(-result["threshold_left_deg"])
    # The free side's (right) limit: a solid line across the plot at +5 deg, within 2 px.
    band = frac[right_row - 2: right_row + 3]
    assert band.max() > 0.8, f"no solid limit line near row {right_row}: {band}"
    assert abs(int(np.argmax(frac)) - right_row) <= 2
    # The other side's limit: dashed, at -4 deg.
    assert frac[left_row - 2: left_row + 3].max() > 0.3
    elsewhere = np.ones(len(frac), bool)
    for r in (right_row, left_row):
        elsewhere[max(0, r - 20): r + 21] = False         # the line and its text label
    assert frac[elsewhere].max() < 0.1, "limit colour forms a line where no threshold is"

    # The curve: blue pixels spanning -8 .. +8 deg, orange (cue) only above the +5 deg limit.
    curve = color_mask(area, colors["curve"]) | color_mask(area, colors["cue"])
    cue = color_mask(area, colors["cue"])
    assert color_mask(area, colors["curve"]).sum() > 500 and cue.sum() > 100
    curve_rows = np.nonzero(curve.any(axis=1))[0]
    amp = result["amplitude_deg"]
    assert abs(curve_rows.min() - row_of(amp)) <= 4 and abs(curve_rows.max() - row_of(-amp)) <= 4
    cue_rows = np.nonzero(cue.any(axis=1))[0]
    assert cue_rows.max() <= right_row + 4 and abs(cue_rows.min() - row_of(amp)) <= 4
    # The level line at 0 deg.
    level = line_fraction(color_mask(area, colors["level"], tol=12))
    assert level[row_of(0.0) - 2: row_of(0.0) + 3].max() > 0.5
    assert result["angle_text"] and result["reps_text"].isdigit() and int(result["reps_text"]) >= 3


def test_last_rep_headline_is_large_in_the_header(qtbot, live, make_window):
    w = make_window(live)
    live.update_status(calibrated=True, calibrating=False, obliquity_deg=1.0, reps=3,
                       last_rep={"event": "rep", "index": 3, "max_drop_deg": 7.94, "returned_to_level": False})
    wait_tick(qtbot, w)
    assert w.last_rep_big.text() == "last 7.9° · not back"
    assert w.last_rep_big.font().pointSize() >= 18


def test_threshold_changed_live_keeps_past_reps_against_their_line(qtbot, live, make_window):
    """Issue 10 item 3: the therapist raises the right limit from 5 to 7 degrees at t = 4 s (through
    the real Pipeline.set_threshold, as the window's command does); the plot keeps the 5-degree line
    under what came before and draws 7 degrees only from the change on: a step line."""
    from host.processing.pipeline import Pipeline, PipelineConfig
    pipe = Pipeline(PipelineConfig(), live=live)  # stance left: the right side is free
    w = make_window(live)
    t = np.arange(0.0, 4.0, 1 / 200)
    feed(live, t, 6.0)
    pipe.t_s = float(t[-1])
    pipe.set_threshold("right", 7.0)
    t2 = np.arange(4.0, 8.0, 1 / 200)
    feed(live, t2, 2.0)
    wait_redraw(qtbot, w)
    wait_tick(qtbot, w)
    now = float(t2[-1])
    change_x = float(t[-1]) - now                       # about -4 s on the plot's axis
    assert w.right_line.value() == 7.0
    # the current limit spans only from the change to now; the old one is the step before it
    mn, mx = w.right_line.span
    assert mn == pytest.approx((change_x + 10.0) / 10.0, abs=0.01) and mx == 1.0
    sx, sy = w.limit_steps["right"].getData()
    assert sx[0] == pytest.approx(-10.0) and sx[-1] == pytest.approx(change_x, abs=1e-6)
    assert set(np.round(sy, 6)) == {5.0}
    # drawn: at x = -6 s the limit colour is at +5 deg, not at +7 deg
    pixels = image_array(w.plot.grab().toImage())
    vb = w.plot.getPlotItem().getViewBox()

    def px(x, y):
        p = w.plot.mapFromScene(vb.mapViewToScene(QtCore.QPointF(x, y)))
        return int(round(p.x())), int(round(p.y()))
    limit = color_mask(pixels, COLORS["limit"])
    col, row5 = px(-6.0, 5.0)
    _, row7 = px(-6.0, 7.0)
    assert limit[row5 - 2: row5 + 3, col].any() and not limit[row7 - 2: row7 + 3, col].any()
    col2, row7b = px(-1.0, 7.0)
    _, row5b = px(-1.0, 5.0)
    assert limit[row7b - 2: row7b + 3, col2].any() and not limit[row5b - 2: row5b + 3, col2].any()
