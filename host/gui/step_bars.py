"""Walking: the per-step drops as bars per side, in a strip under the live window's angle curve.

In: `LiveStatus.steps` (host.sinks.live: (mid-step time s, swing side, drop deg) of recent steps, filled
by host.session.runner from `step` events), the current time (the last sample's) and the thresholds,
via `update(status, t_now_s)` on the window's timer. Out: nothing but the drawing. The strip shares
the curve's time axis (-10..0 s); like the curve, up is the right side low: a step whose right side
dropped is a bar up, a left-side drop a bar down, orange when it passed its side's threshold.
"""
from __future__ import annotations

import pyqtgraph as pg

WINDOW_S = 10.0
BAR_S = 0.25
COLOR_OK = "#1c5aa8"
COLOR_PAST = "#f08c00"


class StepBars:
    def __init__(self, height_px: int = 130):
        self.widget = pg.PlotWidget(background="#ffffff")
        self.widget.setFixedHeight(height_px)
        item = self.widget.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setXRange(-WINDOW_S, 0.0, padding=0)
        item.setYRange(-15.0, 15.0, padding=0)
        item.layout.setContentsMargins(4, 4, 16, 4)  # as the curve's, so the time axes line up
        item.setLabel("left", "step drop °")
        item.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen("#868e96", width=1)), ignoreBounds=True)
        self.bars = pg.BarGraphItem(x=[], height=[], width=BAR_S, brushes=[])
        item.addItem(self.bars)
        self.labels = []
        self.shown = 0       # bars drawn in the last update (for tests)
        self._key = None

    def update(self, status, t_now_s: float, left_axis_px: float | None = None) -> None:
        """`left_axis_px`: the curve's left axis width, so both time axes line up on screen."""
        if left_axis_px and self.widget.getPlotItem().getAxis("left").width() != left_axis_px:
            self.widget.getPlotItem().getAxis("left").setWidth(int(left_axis_px))
        steps = [s for s in status.steps if t_now_s - s[0] <= WINDOW_S]
        key = (tuple(steps), round(t_now_s, 2), status.threshold_left_deg, status.threshold_right_deg)
        if key == self._key:
            return
        self._key = key
        xs, hs, brushes = [], [], []
        for end_t, side, drop in steps:
            thr = status.threshold_right_deg if side == "right" else status.threshold_left_deg
            xs.append(end_t - t_now_s)
            hs.append(drop if side == "right" else -drop)
            brushes.append(pg.mkBrush(COLOR_PAST if drop > thr else COLOR_OK))
        self.bars.setOpts(x=xs, height=hs, width=BAR_S, brushes=brushes)
        self.shown = len(xs)
