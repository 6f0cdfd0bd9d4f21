"""The review of one recorded session: the whole block's curve, a time slider scrubbing a 10 s
window, the angle and rep at the slider in large text, cue periods, limits, markers and the rep table.

In: a session of the store; each block's data comes from host.gui.review_model.load_block_review on
a worker thread (`BackgroundJob`), delivered back on the GUI thread as a Qt signal. Reps, cues,
threshold changes and markers are the ones recorded live. Out: widgets only, nothing is written to
the database. The "Replay" button plays a block back through the live window
(host.gui.live_window.MainWindow) at 1-8 times real time, without sound.
"""
from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from host import store
from host.errors import UserError
from host.gui.qt_common import COLORS, fixed_plot, font, window_frame
from host.gui.review_model import BlockReview, exercise_name, load_block_review
from host.sinks.live import describe_obliquity

log = logging.getLogger(__name__)

WINDOW_S = 10.0               # the review plot shows this much time around the slider
SLIDER_STEP_MS = 100          # arrow keys move the slider by 0.1 s, Page Up/Down by a whole window
REPLAY_SPEEDS = (1.0, 2.0, 4.0, 8.0)
# Left and right are told apart by colour *and* marker shape (colour-vision deficiencies); same
# colours as the HTML report so a printed report and the window read alike.
SIDE_STYLE = {"left": ("#1b6ca8", "o"), "right": ("#c0392b", "s")}
REPS_BAR = "#ced4da"
SILENT_CUE = (150, 150, 150, 60)   # a cue with no tone played (faded feedback, muted, no sound output)
SOUNDING_CUE = (240, 140, 0, 70)
MARKER = "#8e44ad"


class BackgroundJob(QtCore.QObject):
    """Runs a function on a plain thread; `done(result, error)` is delivered on the GUI thread
    (the signal crosses threads queued, because this object lives on the GUI thread)."""

    done = QtCore.Signal(object, object)

    def start(self, fn, *args) -> None:
        def work():
            try:
                result, error = fn(*args), None
            except Exception as e:  # noqa: BLE001 - shown in the window in words, never a traceback
                log.debug("background job failed", exc_info=True)
                result, error = None, e
            self.done.emit(result, error)
        self.thread = threading.Thread(target=work, name="hiplevel-history-job", daemon=True)
        self.thread.start()


class ReviewWindow(QtWidgets.QMainWindow):
    """One recorded session: the whole block's curve, a time slider scrubbing a 10 s window, the
    angle and rep at the slider in large text, cue periods, limits, markers and the rep table."""

    curve_ready = QtCore.Signal()

    def __init__(self, db_path, session: store.SessionInfo, parent=None):
        super().__init__(parent)
        self.db_path = store.db_target(db_path)
        self.session = session
        self.review: BlockReview | None = None
        self._reviews: dict[int, BlockReview] = {}
        self._job = None
        self._shapes: list = []          # per-block plot items (cues, reps, markers), removed on change
        self.time_s = 0.0                # where the slider is, device seconds since the block's first sample
        self.replays: list = []          # (window, session, thread, connection) of running replays
        root = window_frame(self, f"hiplevel — session {session.id} ({session.patient})", 1320, 860)

        root.addLayout(self._build_top(session))
        root.addLayout(self._build_readout())
        body = QtWidgets.QHBoxLayout()
        plots = QtWidgets.QVBoxLayout()
        plots.addWidget(self._build_window_plot(), stretch=4)
        self.legend_label = QtWidgets.QLabel(self._legend())
        self.legend_label.setFont(font(11))
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        plots.addWidget(self.legend_label)
        plots.addWidget(self._build_overview(), stretch=1)
        plots.addLayout(self._build_slider_row())
        body.addLayout(plots, stretch=1)
        body.addWidget(self._build_side(), stretch=0)
        root.addLayout(body, stretch=1)

        self.status_label = QtWidgets.QLabel()
        self.status_label.setFont(font(12))
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        self._show_title()
        self._on_block(self.block_combo.currentIndex())

    # -- construction ------------------------------------------------------------------------------

    def _build_top(self, session: store.SessionInfo) -> QtWidgets.QHBoxLayout:
        """Title, the block picker (several blocks only), replay speed and the Replay button."""
        top = QtWidgets.QHBoxLayout()
        self.title_label = QtWidgets.QLabel()
        self.title_label.setFont(font(14, bold=True))
        self.title_label.setWordWrap(True)
        top.addWidget(self.title_label, stretch=1)
        self.block_combo = QtWidgets.QComboBox()
        self.block_combo.setFont(font(12))
        for b in session.blocks:
            self.block_combo.addItem(f"Block {b.number}: {exercise_name(b.exercise)}, {b.stance} leg", b.id)
        self.block_combo.setVisible(len(session.blocks) > 1)
        self.block_combo.currentIndexChanged.connect(self._on_block)
        top.addWidget(self.block_combo)
        self.speed_combo = QtWidgets.QComboBox()
        self.speed_combo.setFont(font(12))
        for s in REPLAY_SPEEDS:
            self.speed_combo.addItem(f"{s:g}× speed", s)
        self.speed_combo.setToolTip("How fast the replay plays the recording")
        top.addWidget(self.speed_combo)
        self.replay_button = QtWidgets.QPushButton("▶ Replay")
        self.replay_button.setFont(font(12, bold=True))
        self.replay_button.setToolTip("Play this block again in the live window (no sound)")
        self.replay_button.clicked.connect(self.start_replay)
        self.replay_button.setEnabled(False)   # once the block is loaded
        top.addWidget(self.replay_button)
        return top

    def _build_readout(self) -> QtWidgets.QHBoxLayout:
        """The angle at the slider in large type, with its time and rep beside it."""
        big = QtWidgets.QHBoxLayout()
        self.angle_label = QtWidgets.QLabel("Computing the angle curve…")
        self.angle_label.setFont(font(36, bold=True))
        self.angle_label.setMinimumWidth(480)
        big.addWidget(self.angle_label)
        info = QtWidgets.QVBoxLayout()
        info.setSpacing(0)
        self.time_label = QtWidgets.QLabel()
        self.time_label.setFont(font(20, bold=True))
        self.rep_label = QtWidgets.QLabel()
        self.rep_label.setFont(font(16))
        info.addWidget(self.time_label)
        info.addWidget(self.rep_label)
        big.addLayout(info, stretch=1)
        return big

    def _build_slider_row(self) -> QtWidgets.QHBoxLayout:
        slider_row = QtWidgets.QHBoxLayout()
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setSingleStep(SLIDER_STEP_MS)
        self.slider.setPageStep(int(WINDOW_S * 1000))
        self.slider.setMinimumHeight(32)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Move through the recording (arrow keys: 0.1 s, Page Up/Down: 10 s)")
        self.slider.valueChanged.connect(lambda ms: self.set_time(ms / 1000.0, from_slider=True))
        slider_caption = QtWidgets.QLabel("Time")
        slider_caption.setFont(font(12))
        slider_row.addWidget(slider_caption)
        slider_row.addWidget(self.slider, stretch=1)
        self.slider_label = QtWidgets.QLabel()
        self.slider_label.setFont(font(12))
        self.slider_label.setMinimumWidth(130)
        slider_row.addWidget(self.slider_label)
        return slider_row

    def _style_axes(self, item, left: str, bottom: str) -> None:
        item.getAxis("left").setWidth(70)   # the same in both plots, so their time axes line up
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(COLORS["axis"]))
            axis.setTextPen(pg.mkPen(COLORS["axis"]))
            axis.setStyle(tickFont=font(11))
        style = {"color": COLORS["axis"], "font-size": "12pt"}
        item.setLabel("left", left, **style)
        item.setLabel("bottom", bottom, **style)

    def _build_window_plot(self) -> pg.PlotWidget:
        self.plot = pg.PlotWidget(background=COLORS["background"])
        item = fixed_plot(self.plot)
        item.showGrid(x=True, y=True, alpha=0.15)
        self._style_axes(item, "left hip low  ←  degrees  →  right hip low", "seconds since the start of the block")
        item.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(COLORS["level"], width=1)), ignoreBounds=True)
        curve_kw = dict(connect="finite", clipToView=True, autoDownsample=True, downsampleMethod="peak")
        self.limit_curves = {}
        for side in ("right", "left"):
            self.limit_curves[side] = item.plot([], [], **curve_kw)
        self.curve = item.plot([], [], pen=pg.mkPen(COLORS["curve"], width=2), **curve_kw)
        self.cursor = pg.InfiniteLine(pos=0.0, angle=90, pen=pg.mkPen(COLORS["text"], width=2))
        item.addItem(self.cursor, ignoreBounds=True)
        self.cursor.setZValue(20)
        return self.plot

    def _build_overview(self) -> pg.PlotWidget:
        self.overview = pg.PlotWidget(background=COLORS["background"])
        self.overview.setMinimumHeight(120)
        self.overview.setMaximumHeight(170)
        item = fixed_plot(self.overview)
        self._style_axes(item, "°", "whole block (click to jump)")
        self.overview_curve = item.plot([], [], pen=pg.mkPen(COLORS["curve"], width=1), connect="finite",
                                        autoDownsample=True, downsampleMethod="peak")
        self.region = pg.LinearRegionItem(values=(0, WINDOW_S), movable=False,
                                          brush=pg.mkBrush(28, 90, 168, 30), pen=pg.mkPen(COLORS["curve"]))
        item.addItem(self.region, ignoreBounds=True)
        self.overview.scene().sigMouseClicked.connect(self._on_overview_click)
        return self.overview

    def _build_side(self) -> QtWidgets.QWidget:
        side = QtWidgets.QWidget()
        side.setFixedWidth(400)
        col = QtWidgets.QVBoxLayout(side)
        col.setContentsMargins(0, 0, 0, 0)
        self.stats_label = QtWidgets.QLabel()
        self.stats_label.setFont(font(12))
        self.stats_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.stats_label.setWordWrap(True)
        col.addWidget(self.stats_label)
        caption = QtWidgets.QLabel("Reps (recorded live) — click one to go there")
        caption.setFont(font(12, bold=True))
        col.addWidget(caption)
        self.rep_table = QtWidgets.QTableWidget(0, 6)
        self.rep_table.setHorizontalHeaderLabels(["rep", "ended", "low side", "max drop", "duration", "cue"])
        self.rep_table.setFont(font(12))
        self.rep_table.horizontalHeader().setFont(font(11, bold=True))
        self.rep_table.verticalHeader().hide()
        self.rep_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.rep_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.rep_table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.rep_table.cellClicked.connect(self._on_rep_clicked)
        col.addWidget(self.rep_table, stretch=1)
        return side

    def _legend(self) -> str:
        def sw(color, text, dashed=False, block=False):
            mark = "███" if block else ("╌╌" if dashed else "━━")
            return f'<span style="color:{color}; font-weight:bold">{mark}</span>&nbsp;{text}'
        parts = [sw(COLORS["curve"], "pelvic level"), sw(COLORS["cue"], "cue sounding", block=True),
                 sw("#b4b4b4", "cue kept silent (faded feedback)", block=True),
                 sw(COLORS["limit"], "limit of the free side"), sw(COLORS["limit"], "other side", dashed=True),
                 sw(MARKER, "therapist marker")]
        return "&nbsp;&nbsp;&nbsp;".join(parts)

    def _show_title(self) -> None:
        s = self.session
        b = self._block()
        words = [f"Session {s.id}", f"patient {s.patient}", store.local_time(s.started_utc)]
        if b is not None:
            words.append(f"{exercise_name(b.exercise)}, standing on the {b.stance} leg")
            words.append(b.status)
        self.title_label.setText("  ·  ".join(words))

    # -- block loading ---------------------------------------------------------------------------

    def _block(self) -> store.BlockInfo | None:
        bid = self.block_combo.currentData()
        return next((b for b in self.session.blocks if b.id == bid), None)

    def _on_block(self, _index: int) -> None:
        block = self._block()
        self._show_title()
        if block is None:
            self.angle_label.setText("No recorded blocks")
            return
        if block.id in self._reviews:
            self._show_review(self._reviews[block.id])
            return
        self.review = None
        self.slider.setEnabled(False)
        self.replay_button.setEnabled(False)
        self.angle_label.setText("Computing the angle curve…")
        self.time_label.setText("")
        self.rep_label.setText("")
        self.status_label.setText(f"Replaying the {block.frame_count} recorded frames through the pipeline…")
        job = self._job = BackgroundJob(self)
        # Queued explicitly: the signal is emitted on the worker thread, and a lambda has no thread
        # of its own to queue to — left to AutoConnection it ran the widget updates on the worker.
        job.done.connect(lambda result, error, bid=block.id: self._on_loaded(bid, result, error),
                         QtCore.Qt.ConnectionType.QueuedConnection)
        job.start(load_block_review, self.db_path, block)

    def _on_loaded(self, block_id: int, review: BlockReview | None, error) -> None:
        if error is not None:
            self.angle_label.setText("The recording cannot be shown")
            self.status_label.setText(str(error) if isinstance(error, (store.StoreError, UserError)) else
                                      f"The recording cannot be replayed: {error}")
            return
        self._reviews[block_id] = review
        if self._block() is not None and self._block().id == block_id:
            self._show_review(review)

    def _show_review(self, r: BlockReview) -> None:
        self.review = r
        b = r.block
        item = self.plot.getPlotItem()
        ov = self.overview.getPlotItem()
        for parent, shape in self._shapes:
            parent.removeItem(shape)
        self._shapes = []
        self.curve.setData(r.t_s, r.obliquity_deg)
        self.overview_curve.setData(r.t_s, r.obliquity_deg)
        self._draw_limits(r)
        self._draw_cues(r, (item, ov))
        half = self._half_range(r)
        self._draw_reps(r, item, half)
        self._draw_markers(r, item)
        item.setYRange(-half, half, padding=0)
        ov.setYRange(-half, half, padding=0)
        ov.setXRange(0.0, max(r.end_t_s, WINDOW_S), padding=0.01)
        ov.getAxis("left").setTicks([[(-half, f"{-half:g}"), (0, "0"), (half, f"{half:g}")], []])

        self._fill_reps(r)
        self._fill_stats(r)
        self.slider.blockSignals(True)
        self.slider.setRange(0, int(round(r.end_t_s * 1000)))
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        self.replay_button.setEnabled(b.frame_count > 0)
        self.status_label.setText(self._notes(r))
        # start at the first rep (or the first angle), where there is something to see
        first = next((float(x["t"]) - float(x.get("duration_s") or 0.0) for x in r.reps if x.get("t") is not None),
                     float(r.t_s[0]) if len(r.t_s) else 0.0)
        self.set_time(max(0.0, first - 1.0))
        self.curve_ready.emit()

    def _draw_limits(self, r: BlockReview) -> None:
        # limits as drawn in the live window: right drop up (+), left drop down (-); free side solid
        for side, sign in (("right", 1.0), ("left", -1.0)):
            xs, ys = r.thresholds[side]
            free = side == r.block.free_side
            self.limit_curves[side].setData(xs, sign * ys)
            self.limit_curves[side].setPen(pg.mkPen(
                COLORS["limit"], width=3 if free else 1.5,
                style=QtCore.Qt.PenStyle.SolidLine if free else QtCore.Qt.PenStyle.DashLine))

    def _draw_cues(self, r: BlockReview, parents) -> None:
        for a, c, audible in r.cues:
            for parent in parents:
                band = pg.LinearRegionItem(values=(a, c), movable=False, pen=pg.mkPen(None),
                                           brush=pg.mkBrush(*(SOUNDING_CUE if audible else SILENT_CUE)))
                band.setZValue(-10)
                parent.addItem(band, ignoreBounds=True)
                self._shapes.append((parent, band))

    @staticmethod
    def _half_range(r: BlockReview) -> float:
        """Half the y span: the largest angle or limit, rounded up to 5 deg, with room for brackets."""
        finite = r.obliquity_deg[np.isfinite(r.obliquity_deg)]
        peak = max([float(np.max(np.abs(finite))) + 1.0] if finite.size else [0.0])
        peak = max(peak, *(float(np.max(ys)) + 2.0 for _, ys in r.thresholds.values()))
        return max(10.0, 5.0 * math.ceil((peak + 1.0) / 5.0))

    def _draw_reps(self, r: BlockReview, item, half: float) -> None:
        for rep in r.reps:
            if rep.get("t") is None:
                continue
            end = float(rep["t"])
            start = end - float(rep.get("duration_s") or 0.0)
            # a bracket over the rep with its number and depth, at the top of the plot
            y = half * 0.9
            bracket = pg.PlotDataItem([start, start, end, end], [y - half * 0.03, y, y, y - half * 0.03],
                                      pen=pg.mkPen(COLORS["axis"], width=1.5))
            drop = rep.get("max_drop_deg")
            label = pg.TextItem(f"rep {rep.get('index', '')}" + (f" · {drop:.1f}°" if drop is not None else ""),
                                color=COLORS["axis"], anchor=(0.5, 1.0))
            label.setFont(font(10))
            label.setPos((start + end) / 2, y)
            for shape in (bracket, label):
                item.addItem(shape, ignoreBounds=True)
                self._shapes.append((item, shape))

    def _draw_markers(self, r: BlockReview, item) -> None:
        for m in r.markers:
            if m.get("t_s") is None:
                continue
            line = pg.InfiniteLine(pos=float(m["t_s"]), angle=90, pen=pg.mkPen(MARKER, width=2),
                                   label=str(m["label"]), labelOpts=dict(position=0.06, color=MARKER,
                                                                         fill=pg.mkBrush(255, 255, 255, 200)))
            line.label.setFont(font(10))
            item.addItem(line, ignoreBounds=True)
            self._shapes.append((item, line))

    @staticmethod
    def _notes(r: BlockReview) -> str:
        notes = []
        if not len(r.t_s):
            notes.append("No angle data: the block ended before calibration.")
        if r.comparison is not None and not r.comparison.same:
            notes.append("The curve is a re-analysis with the stored settings and differs from what happened "
                         f"live (were settings changed during the block?): {r.comparison.sentence()}")
        if r.block.status == "interrupted":
            notes.append("This recording was interrupted; everything up to then is shown.")
        if not notes:
            n_cues = len(r.cues)
            notes.append(f"{len(r.t_s)} samples, {len(r.reps)} rep{'s' * (len(r.reps) != 1)}, {n_cues} cue "
                         f"period{'s' * (n_cues != 1)} (curve computed in {r.replay_wall_s:.1f} s).")
        return " ".join(notes)

    def _fill_reps(self, r: BlockReview) -> None:
        t = self.rep_table
        t.setRowCount(len(r.reps))
        for i, rep in enumerate(r.reps):
            dur = rep.get("duration_s")
            cells = [str(rep.get("index", "")), f"{rep['t']:.1f} s" if rep.get("t") is not None else "",
                     str(rep.get("low_side", "")),
                     f"{rep['max_drop_deg']:.1f}°" if rep.get("max_drop_deg") is not None else "",
                     f"{dur:.1f} s" if dur is not None else "", "yes" if rep.get("cued") else ""]
            for j, text in enumerate(cells):
                cell = QtWidgets.QTableWidgetItem(text)
                cell.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
                if j == 5 and rep.get("cued"):
                    cell.setBackground(QtGui.QColor(COLORS["cue"]))
                t.setItem(i, j, cell)
        t.resizeColumnsToContents()

    def _fill_stats(self, r: BlockReview) -> None:
        stats = store.side_stats(r.reps)
        rows = []
        for side, s in stats.items():
            rows.append(f"<tr><td><b>{side} hip low</b></td><td>&nbsp;{s['reps']} reps, {s['cued']} with the cue"
                        f"</td></tr><tr><td></td><td>&nbsp;worst {s['worst_drop_deg']:.1f}°, average "
                        f"{s['mean_drop_deg']:.1f}°</td></tr>")
        b = r.block
        limits = (f"Limits: left {b.threshold_left_deg:g}°, right {b.threshold_right_deg:g}°"
                  + (" (changed during the block)" if any(e.get("event") == "threshold_changed" for e in r.events)
                     else ""))
        table = f"<table>{''.join(rows)}</table>" if rows else "<p>No reps.</p>"
        self.stats_label.setText(f"{table}<p>{limits}</p>")

    # -- the time slider -------------------------------------------------------------------------

    def window_range(self, t: float) -> tuple[float, float]:
        """The 10 s shown around time t: centred on it, kept inside the block where it can be."""
        end = self.review.end_t_s if self.review is not None else WINDOW_S
        start = min(max(0.0, t - WINDOW_S / 2), max(0.0, end - WINDOW_S))
        return start, start + WINDOW_S

    def set_time(self, t: float, from_slider: bool = False) -> None:
        """Move the review to device time t (seconds since the block's first sample)."""
        r = self.review
        if r is None:
            return
        t = min(max(0.0, t), r.end_t_s)
        if not from_slider:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(t * 1000)))
            self.slider.blockSignals(False)
        self.time_s = t
        a, b = self.window_range(t)
        self.plot.getPlotItem().setXRange(a, b, padding=0)
        self.cursor.setValue(t)
        self.region.setRegion((a, b))
        self.slider_label.setText(f"{t:.1f} s of {r.end_t_s:.0f} s")

        cal_t = (r.block.calibration or {}).get("t")
        value = r.value_at(t)
        cue_on, audible = r.cue_at(t)
        if math.isfinite(value):
            text = describe_obliquity(value)
            color = COLORS["cue"] if cue_on and audible else COLORS["text"]
        elif not len(r.t_s):
            text, color = "Not calibrated", COLORS["muted_text"]
        elif t < r.t_s[0]:
            text, color = "Calibrating…", COLORS["muted_text"]
        else:
            text, color = "–", COLORS["muted_text"]
        self.angle_label.setText(text)
        self.angle_label.setStyleSheet(f"color:{color}")
        self.time_label.setText(f"at {t:.1f} s" + (f"  ({value:+.1f}°)" if math.isfinite(value) else ""))
        rep, before = r.rep_at(t)
        if rep is not None:
            words = [f"Rep {rep.get('index', '?')} of {len(r.reps)}"]
            if rep.get("max_drop_deg") is not None:
                words.append(f"deepest {rep['max_drop_deg']:.1f}° ({rep.get('low_side', '')} hip low)")
        elif before is not None:
            words = [f"Between reps (after rep {before.get('index', '?')} of {len(r.reps)})"]
        elif cal_t is not None and t < cal_t:
            words = ["Calibration (standing still, bends)"]
        else:
            words = ["Before the first rep"]
        if cue_on:
            words.append("♪ cue sounding" if audible else "cue kept silent")
        self.rep_label.setText(" · ".join(words))
        row = r.reps.index(rep) if rep is not None else -1
        if row >= 0 and self.rep_table.currentRow() != row:
            self.rep_table.blockSignals(True)
            self.rep_table.selectRow(row)
            self.rep_table.blockSignals(False)

    def _on_rep_clicked(self, row: int, _col: int) -> None:
        if self.review is None or row >= len(self.review.reps):
            return
        rep = self.review.reps[row]
        end = float(rep.get("t", 0.0))
        self.set_time(end - float(rep.get("duration_s") or 0.0) / 2)

    def _on_overview_click(self, event) -> None:
        vb = self.overview.getPlotItem().getViewBox()
        if self.review is None or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        self.set_time(vb.mapSceneToView(event.scenePos()).x())

    # -- replay through the live window ------------------------------------------------------------

    def start_replay(self) -> None:
        """Play the block again through the live pipeline and window, paced at the chosen speed."""
        from host.session.review import config_for
        from host.gui.live_window import MainWindow
        from host.sinks.live import LiveBuffer
        from host.session.runner import StreamRunner
        from host.links.replay import ReplayTransport
        block = self._block()
        if block is None or not block.frame_count:
            return
        speed = float(self.speed_combo.currentData())
        try:
            cfg = config_for(block)
            conn = store.connect(self.db_path)
        except Exception as e:  # noqa: BLE001 - UserError / StoreError: said in the status line
            self.status_label.setText(f"Cannot replay: {e}")
            return
        live = LiveBuffer()
        session = StreamRunner(ReplayTransport(conn, block, speed=speed), cfg, live=live, no_data_timeout_s=math.inf)
        window = MainWindow(live)
        window.setWindowTitle(f"hiplevel — replay of session {self.session.id} block {block.number} "
                              f"({speed:g}× speed, no sound)")
        entry = (window, session, session.start_in_thread(), conn)
        self.replays.append(entry)
        window.closed.connect(lambda e=entry: self._stop_replay(e))
        window.show()

    def _stop_replay(self, entry) -> None:
        window, session, thread, conn = entry
        if thread.is_alive():
            try:
                session.stop()
            except RuntimeError:  # it ended (and closed its loop) just now
                pass
            thread.join(timeout=3)
        conn.close()
        if entry in self.replays:
            self.replays.remove(entry)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        for entry in list(self.replays):
            entry[0].close()
        super().closeEvent(event)


# ----------------------------------------------------------------------------------------------------
# the history window
