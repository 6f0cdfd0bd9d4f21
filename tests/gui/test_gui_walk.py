"""The live window in the walking mode, drawn for real offscreen: per-step drops as bars per side
under the angle curve, and the last step in the header and the side panel."""
from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from host.gui.live_window import MainWindow  # noqa: E402
from host.gui.step_bars import COLOR_OK, COLOR_PAST  # noqa: E402
from host.sinks.live import LiveBuffer  # noqa: E402
from tests.gui.test_gui import color_mask, image_array  # noqa: E402


def step(i, t, side, drop, thr=6.5):
    return {"event": "step", "index": i, "foot": "left" if side == "right" else "right", "swing_side": side,
            "end_t": t, "drop_deg": drop, "duration_s": 0.55, "cued": drop > thr, "threshold_deg": thr}


def test_step_drops_are_bars_per_side_under_the_curve(qtbot):
    live = LiveBuffer()
    live.update_status(exercise="walk", calibrated=True, calibrating=False, threshold_left_deg=6.5,
                       threshold_right_deg=6.5)
    w = MainWindow(live)
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    assert w.step_bars.widget.isVisible()
    t = np.arange(0.0, 12.0, 0.005) + 50.0
    for ti in t:
        live.append(float(ti), 2.0, 0.0, False)
    # 14 steps over the last 8 s: the right side drops 9.5 (past 6.5), the left 4.5
    steps = [step(i + 1, 54.0 + 0.55 * i, "right" if i % 2 else "left", 9.5 if i % 2 else 4.5) for i in range(14)]
    # one step older than the 10 s window is not drawn
    live.update_status(steps=[(40.0, "left", 3.0)] + [(s["end_t"], s["swing_side"], s["drop_deg"]) for s in steps],
                       last_step=steps[-1], reps=14)
    qtbot.waitUntil(lambda: w.step_bars.shown == 14, timeout=2000)
    opts = w.step_bars.bars.opts
    heights = list(opts["height"])
    assert heights == [4.5 * (1 if i % 2 else -1) * (9.5 / 4.5 if i % 2 else 1) for i in range(14)]
    xs = list(opts["x"])
    assert xs[-1] == pytest.approx(steps[-1]["end_t"] - t[-1]) and all(-10 <= x <= 0 for x in xs)
    # drawn: orange bars up (right side past the threshold), blue bars down (left side, normal)
    pixels = image_array(w.step_bars.widget.grab().toImage())
    orange, blue = color_mask(pixels, COLOR_PAST), color_mask(pixels, COLOR_OK)
    assert orange.sum() > 200 and blue.sum() > 100
    # the orange bars lie wholly above the blue ones: up from the zero line and down from it
    assert np.nonzero(orange)[0].max() <= np.nonzero(blue)[0].min() + 1
    assert np.ptp(np.nonzero(orange)[0]) > 1.5 * np.ptp(np.nonzero(blue)[0])  # 9.5 vs 4.5 deg
    qtbot.waitUntil(lambda: "last step: right side 9.5° down" in w.last_rep_big.text(), timeout=2000)
    assert "Last step" in w.rep_box.title() and "Swing side drop" in w.last_rep_label.text()


def test_exercises_show_no_step_bars(qtbot):
    live = LiveBuffer()
    live.update_status(exercise="hip-dip")
    w = MainWindow(live)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert not w.step_bars.widget.isVisible()
