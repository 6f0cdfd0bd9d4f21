"""Runs the real hiplevel window through `run_gui` on whatever display Qt is given, for test_gui's Xvfb test.

A feeder thread plays the pipeline's part: it appends a sine-like obliquity (amplitude 8 deg, crossing the
5 deg right-hip limit) at 200 samples/s in 20 ms batches and updates the status, for `--seconds`. Then the
feeder stops, the window redraws once more, the whole screen is grabbed to `--png`, the window closes,
and `--json` receives what the test needs to check the picture independently: the plot area's position
on screen, the axis ranges, the colours, and soak counters (redraws, samples fed, CPU time).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

from host.sinks.live import LiveBuffer  # noqa: E402

RATE_HZ = 200.0
AMPLITUDE_DEG = 8.0
FREQ_HZ = 0.4
THRESHOLD_RIGHT_DEG = 5.0
THRESHOLD_LEFT_DEG = 4.0
LOSE_EVERY = 150          # drop one sample in 150 so the lost-sample counter is exercised


class Feeder:
    """Stands in for the pipeline thread: writes samples and status, never touches a widget."""

    def __init__(self, live: LiveBuffer):
        self.live = live
        self.samples = 0
        self.lost = 0
        self.stop_calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        """What run_gui calls when the window closes (counted: it must be exactly once)."""
        self.stop_calls += 1
        self.halt()

    def halt(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self):
        t0 = time.perf_counter()
        i = 0
        reps = 0
        peak = 0.0
        while not self._stop.is_set():
            due = int((time.perf_counter() - t0) * RATE_HZ)
            while i < due:
                t_s = i / RATE_HZ
                i += 1
                if i % LOSE_EVERY == 0:
                    self.lost += 1
                    continue
                obl = AMPLITUDE_DEG * math.sin(2 * math.pi * FREQ_HZ * t_s)
                cue = obl >= THRESHOLD_RIGHT_DEG
                self.live.append(t_s, obl, 3.0 * math.cos(2 * math.pi * 0.1 * t_s), cue)
                self.samples += 1
                fields = dict(obliquity_deg=obl, forward_tilt_deg=0.0, cue_on=cue, samples=self.samples,
                              lost_samples=self.lost)
                peak = max(peak, obl)
                if peak > THRESHOLD_RIGHT_DEG and obl < 0.5:     # back near level: one rep done
                    reps += 1
                    # shaped like host.processing.exercise's rep and set_summary events
                    fields.update(reps=reps, last_rep={
                        "event": "rep", "t": round(t_s, 4), "index": reps, "set": 1, "exercise": "hip-dip",
                        "low_side": "right", "max_drop_deg": round(peak, 2), "duration_s": 1 / FREQ_HZ,
                        "cued": True, "feedback_given": True, "time_past_threshold_s": 0.55,
                        "depth_deg": round(peak, 2), "reached_target": True, "returned_to_level": True,
                        "above_level_deg": 0.0})
                    if reps % 3 == 0:
                        fields.update(last_summary={
                            "event": "set_summary", "t": round(t_s, 4), "set": 1, "exercise": "hip-dip",
                            "low_side": "right", "threshold_deg": THRESHOLD_RIGHT_DEG, "reps": reps,
                            "cued_reps": reps, "worst_drop_deg": AMPLITUDE_DEG,
                            "average_drop_deg": AMPLITUDE_DEG, "cues": reps, "time_past_threshold_s": 1.6})
                    peak = 0.0
                self.live.update_status(**fields)
            self._stop.wait(0.02)


class Commands:
    """The command interface the window offers controls for; the script only records calls."""

    def __init__(self):
        self.calls = []

    def recalibrate(self):
        self.calls.append(("recalibrate",))

    def set_threshold(self, side, deg):
        self.calls.append(("set_threshold", side, deg))

    def set_muted(self, muted):
        self.calls.append(("set_muted", muted))

    def end_set(self):
        self.calls.append(("end_set",))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--png", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    from PySide6 import QtCore, QtWidgets

    from host.gui.live_window import MainWindow, run_gui
    from host.gui.qt_common import COLORS

    app = QtWidgets.QApplication([sys.argv[0]])
    live = LiveBuffer()
    live.update_status(calibrated=True, stance="left", threshold_left_deg=THRESHOLD_LEFT_DEG,
                       threshold_right_deg=THRESHOLD_RIGHT_DEG, link="streaming",
                       message="Lower the right hip slowly, then lift it back to level.")
    feeder = Feeder(live)
    result: dict = {"platform": app.platformName()}
    cpu0 = time.process_time()
    wall0 = time.perf_counter()

    def window() -> MainWindow:
        return next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))

    def end_soak():
        win = window()
        result.update(soak_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0,
                      redraws=win.redraws)
        feeder.halt()
        QtCore.QTimer.singleShot(500, grab)      # let the timer draw the final data first

    def grab():
        win = window()
        screen = app.primaryScreen()
        shot = screen.grabWindow(0)
        shot.save(args.png)
        plot = win.plot
        rect = plot.getPlotItem().getViewBox().sceneBoundingRect()
        top_left = plot.mapToGlobal(plot.mapFromScene(rect.topLeft()))
        bottom_right = plot.mapToGlobal(plot.mapFromScene(rect.bottomRight()))
        (x0, x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
        result.update(
            screen_px=[screen.geometry().width(), screen.geometry().height()],
            device_pixel_ratio=shot.devicePixelRatio(),
            view_rect_px=[top_left.x(), top_left.y(), bottom_right.x(), bottom_right.y()],
            x_range=[x0, x1], y_range=[y0, y1],
            threshold_right_deg=THRESHOLD_RIGHT_DEG, threshold_left_deg=THRESHOLD_LEFT_DEG,
            amplitude_deg=AMPLITUDE_DEG, colors=COLORS,
            angle_text=win.angle_label.text(), reps_text=win.reps_label.text())
        win.close()

    QtCore.QTimer.singleShot(int(args.seconds * 1000), end_soak)
    code = run_gui(live, start=feeder.start, stop=feeder.stop, commands=Commands(), title="hiplevel test")
    result.update(exit_code=code, samples_fed=feeder.samples, lost=feeder.lost,
                  stop_calls=feeder.stop_calls)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
