"""The history window: a patient's recorded sessions, their progress over weeks, and a review of any
recorded block with a time slider (`hiplevel history`, see host.commands.history).

In: the session database (host.store). Lists, counts and the progress chart come from small queries
on the GUI thread (patients, sessions, the indexed rep columns via `store.progress`). A block's angle
curve comes from replaying its stored frames through the live pipeline on a worker thread
(`cmd_replay.replay_block`: the same decoder, estimator, calibration and exercise logic as live, at
full speed), with its own database connection; the result crosses back to the GUI thread as a Qt
signal. Reps, cues, threshold changes and markers are the ones recorded live.
Out: widgets only, nothing is written to the database. The review's "Replay" button plays a block
back through the live window (host.gui.live_window.MainWindow) at 1-8 times real time, without sound.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from host import store
from host.cli import UserError
from host.gui.live_window import COLORS, describe_obliquity

log = logging.getLogger(__name__)

WINDOW_S = 10.0               # the review plot shows this much time around the slider
SLIDER_STEP_MS = 100          # arrow keys move the slider by 0.1 s, Page Up/Down by a whole window
REPLAY_SPEEDS = (1.0, 2.0, 4.0, 8.0)
# Left and right are told apart by colour *and* marker shape (colour-vision deficiencies); same
# colours as the HTML report so a printed report and the window read alike.
SIDE_STYLE = {"left": ("#1b6ca8", "o"), "right": ("#c0392b", "s")}
REPS_BAR = "#ced4da"
SILENT_CUE = (150, 150, 150, 60)   # a cue kept silent by faded feedback
SOUNDING_CUE = (240, 140, 0, 70)
MARKER = "#8e44ad"


def _font(point_size: int, bold: bool = False) -> QtGui.QFont:
    f = QtGui.QFont()
    f.setPointSize(point_size)
    f.setBold(bold)
    return f


def exercise_name(exercise: str) -> str:
    return exercise.replace("-", " ").capitalize()


def drops_text(sides: dict, key: str) -> str:
    """'left 4.0°, right 8.9°' for the sides that have reps; '' when none."""
    parts = [f"{side} {sides[side][key]:.1f}°" for side in ("left", "right")
             if side in sides and sides[side].get(key) is not None]
    return ", ".join(parts)


def merge_sides(rows: list[dict]) -> dict:
    """Per-side numbers of several store.progress rows (one session, several exercises) as one."""
    out: dict = {}
    for r in rows:
        for side, s in r["sides"].items():
            m = out.setdefault(side, {"reps": 0, "cued": 0, "worst_drop_deg": None, "_sum": 0.0})
            if s.get("worst_drop_deg") is not None:
                m["worst_drop_deg"] = max(m["worst_drop_deg"] or -math.inf, s["worst_drop_deg"])
                m["_sum"] += s["mean_drop_deg"] * s["reps"]
            m["reps"] += s["reps"]
            m["cued"] += s["cued"]
    for m in out.values():
        m["mean_drop_deg"] = m.pop("_sum") / m["reps"] if m["reps"] else None
    return out


def date_labels(rows: list[dict]) -> list[str]:
    """Short dates for the chart's x axis; with the time when a day holds several sessions."""
    labels = [store.local_time(r["started_utc"], "%d %b") for r in rows]
    if len(set(labels)) < len(labels):
        labels = [store.local_time(r["started_utc"], "%d %b\n%H:%M") for r in rows]
    return labels


# ----------------------------------------------------------------------------------------------------
# a block's review data (computed off the GUI thread)

@dataclass
class BlockReview:
    block: store.BlockInfo
    t_s: np.ndarray                 # device seconds since the block's first sample (from calibration on)
    obliquity_deg: np.ndarray
    end_t_s: float                  # the end of the block on the same clock
    events: list[dict]              # as recorded live
    reps: list[dict]
    cues: list[tuple[float, float, bool]]   # (start, end, audible)
    markers: list[dict]
    thresholds: dict = field(default_factory=dict)   # side -> (t_s steps, deg steps)
    verdict: str = ""               # do the replay's reps match the recorded ones
    replay_wall_s: float = 0.0

    def value_at(self, t: float) -> float:
        """The angle at device time t (the nearest sample), NaN before calibration or in a gap."""
        if not len(self.t_s) or t < self.t_s[0] - 0.05:
            return float("nan")
        i = int(np.clip(np.searchsorted(self.t_s, t), 1, len(self.t_s) - 1))
        if abs(self.t_s[i - 1] - t) <= abs(self.t_s[i] - t):
            i -= 1
        return float(self.obliquity_deg[i]) if abs(self.t_s[i] - t) < 0.1 else float("nan")

    def rep_at(self, t: float) -> tuple[dict | None, dict | None]:
        """(the rep under way at t, the last rep finished before t)."""
        before = None
        prev_end = -math.inf
        for r in self.reps:
            end = float(r.get("t", math.nan))
            start = end - float(r["duration_s"]) if r.get("duration_s") is not None else prev_end
            if start <= t <= end:
                return r, before
            if end < t:
                before = r
            prev_end = end
        return None, before

    def cue_at(self, t: float) -> tuple[bool, bool]:
        """(a cue was on at t, it was audible)."""
        for a, b, audible in self.cues:
            if a <= t < b:
                return True, audible
        return False, False


def threshold_steps(block: store.BlockInfo, events: list[dict], end_t_s: float) -> dict:
    """Each side's limit over time: the block's setting, then every `threshold_changed` from the
    window, as step lines (x, y) in degrees of drop."""
    out = {}
    for side in ("left", "right"):
        xs, ys = [0.0], [float(getattr(block, f"threshold_{side}_deg"))]
        for e in events:
            if e.get("event") == "threshold_changed" and e.get("side") == side:
                t = float(e.get("t", 0.0))
                xs += [t, t]
                ys += [ys[-1], float(e["threshold_deg"])]
        xs.append(max(end_t_s, xs[-1]))
        ys.append(ys[-1])
        out[side] = (np.array(xs), np.array(ys))
    return out


def load_block_review(db_path, block: store.BlockInfo) -> BlockReview:
    """Replay the block's frames through the live pipeline (full speed) for its angle curve. Runs on
    a worker thread with its own connection. Raises UserError / StoreError in plain words."""
    from host.commands.replay import compare_reps, config_for, replay_block
    from host.commands.report import cue_list
    conn = store.connect(db_path)
    try:
        recorded = [e for _, e in store.events(conn, block.id)]
        reps = [e for e in recorded if e.get("event") == "rep"]
        marks = store.markers(conn, block.id)
        t_s = obl = np.zeros(0)
        verdict, wall = "", 0.0
        if block.frame_count:
            r = replay_block(conn, block, config_for(block), speed=None, trace=True)
            wall = r.wall_s
            if r.samples["seq"]:
                t_s = (np.asarray(r.samples["t_device_us"], dtype=np.int64) - r.pipeline.t0_us) * 1e-6
                obl = np.asarray(r.samples["obliquity_deg"], dtype=float)
            verdict = compare_reps(reps, r.reps)
    except sqlite3.Error as e:
        raise store.StoreError(store.explain(e, db_path)) from None
    finally:
        conn.close()
    # no angle (ended before calibration): the host clock's length of the block stands in
    times = [float(t_s[-1])] if len(t_s) else [block.duration_s]
    times += [float(e["t"]) for e in recorded if isinstance(e.get("t"), (int, float))]
    end_t = max(times, default=0.0)
    return BlockReview(block=block, t_s=t_s, obliquity_deg=obl, end_t_s=end_t, events=recorded, reps=reps,
                       cues=cue_list(recorded, end_t), markers=marks,
                       thresholds=threshold_steps(block, recorded, end_t), verdict=verdict, replay_wall_s=wall)


class _Job(QtCore.QObject):
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


# ----------------------------------------------------------------------------------------------------
# the review of one session

class ReviewWindow(QtWidgets.QMainWindow):
    """One recorded session: the whole block's curve, a time slider scrubbing a 10 s window, the
    angle and rep at the slider in large text, cue periods, limits, markers and the rep table."""

    curve_ready = QtCore.Signal()

    def __init__(self, db_path, session: store.SessionInfo, parent=None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.session = session
        self.review: BlockReview | None = None
        self._reviews: dict[int, BlockReview] = {}
        self._job = None
        self._shapes: list = []          # per-block plot items (cues, reps, markers), removed on change
        self.time_s = 0.0                # where the slider is, device seconds since the block's first sample
        self.replays: list = []          # (window, session, thread, connection) of running replays
        self.setWindowTitle(f"hiplevel — session {session.id} ({session.patient})")
        self.resize(1320, 860)

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        root = QtWidgets.QVBoxLayout(central)
        root.setContentsMargins(12, 8, 12, 8)
        root.setSpacing(6)

        top = QtWidgets.QHBoxLayout()
        self.title_label = QtWidgets.QLabel()
        self.title_label.setFont(_font(14, bold=True))
        self.title_label.setWordWrap(True)
        top.addWidget(self.title_label, stretch=1)
        self.block_combo = QtWidgets.QComboBox()
        self.block_combo.setFont(_font(12))
        for b in session.blocks:
            self.block_combo.addItem(f"Block {b.number}: {exercise_name(b.exercise)}, {b.stance} leg", b.id)
        self.block_combo.setVisible(len(session.blocks) > 1)
        self.block_combo.currentIndexChanged.connect(self._on_block)
        top.addWidget(self.block_combo)
        self.speed_combo = QtWidgets.QComboBox()
        self.speed_combo.setFont(_font(12))
        for s in REPLAY_SPEEDS:
            self.speed_combo.addItem(f"{s:g}× speed", s)
        self.speed_combo.setToolTip("How fast the replay plays the recording")
        top.addWidget(self.speed_combo)
        self.replay_button = QtWidgets.QPushButton("▶ Replay")
        self.replay_button.setFont(_font(12, bold=True))
        self.replay_button.setToolTip("Play this block again in the live window (no sound)")
        self.replay_button.clicked.connect(self.start_replay)
        self.replay_button.setEnabled(False)   # once the block is loaded
        top.addWidget(self.replay_button)
        root.addLayout(top)

        big = QtWidgets.QHBoxLayout()
        self.angle_label = QtWidgets.QLabel("Computing the angle curve…")
        self.angle_label.setFont(_font(36, bold=True))
        self.angle_label.setMinimumWidth(480)
        big.addWidget(self.angle_label)
        info = QtWidgets.QVBoxLayout()
        info.setSpacing(0)
        self.time_label = QtWidgets.QLabel()
        self.time_label.setFont(_font(20, bold=True))
        self.rep_label = QtWidgets.QLabel()
        self.rep_label.setFont(_font(16))
        info.addWidget(self.time_label)
        info.addWidget(self.rep_label)
        big.addLayout(info, stretch=1)
        root.addLayout(big)

        body = QtWidgets.QHBoxLayout()
        plots = QtWidgets.QVBoxLayout()
        plots.addWidget(self._build_window_plot(), stretch=4)
        self.legend_label = QtWidgets.QLabel(self._legend())
        self.legend_label.setFont(_font(11))
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        plots.addWidget(self.legend_label)
        plots.addWidget(self._build_overview(), stretch=1)
        slider_row = QtWidgets.QHBoxLayout()
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setSingleStep(SLIDER_STEP_MS)
        self.slider.setPageStep(int(WINDOW_S * 1000))
        self.slider.setMinimumHeight(32)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Move through the recording (arrow keys: 0.1 s, Page Up/Down: 10 s)")
        self.slider.valueChanged.connect(lambda ms: self.set_time(ms / 1000.0, from_slider=True))
        slider_caption = QtWidgets.QLabel("Time")
        slider_caption.setFont(_font(12))
        slider_row.addWidget(slider_caption)
        slider_row.addWidget(self.slider, stretch=1)
        self.slider_label = QtWidgets.QLabel()
        self.slider_label.setFont(_font(12))
        self.slider_label.setMinimumWidth(130)
        slider_row.addWidget(self.slider_label)
        plots.addLayout(slider_row)
        body.addLayout(plots, stretch=1)
        body.addWidget(self._build_side(), stretch=0)
        root.addLayout(body, stretch=1)

        self.status_label = QtWidgets.QLabel()
        self.status_label.setFont(_font(12))
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        self._show_title()
        self._on_block(self.block_combo.currentIndex())

    # -- construction ------------------------------------------------------------------------------

    def _style_axes(self, item, left: str, bottom: str) -> None:
        item.getAxis("left").setWidth(70)   # the same in both plots, so their time axes line up
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(COLORS["axis"]))
            axis.setTextPen(pg.mkPen(COLORS["axis"]))
            axis.setStyle(tickFont=_font(11))
        style = {"color": COLORS["axis"], "font-size": "12pt"}
        item.setLabel("left", left, **style)
        item.setLabel("bottom", bottom, **style)

    def _build_window_plot(self) -> pg.PlotWidget:
        self.plot = pg.PlotWidget(background=COLORS["background"])
        item = self.plot.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.setMenuEnabled(False)
        item.hideButtons()
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
        item = self.overview.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.setMenuEnabled(False)
        item.hideButtons()
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
        self.stats_label.setFont(_font(12))
        self.stats_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.stats_label.setWordWrap(True)
        col.addWidget(self.stats_label)
        caption = QtWidgets.QLabel("Reps (recorded live) — click one to go there")
        caption.setFont(_font(12, bold=True))
        col.addWidget(caption)
        self.rep_table = QtWidgets.QTableWidget(0, 6)
        self.rep_table.setHorizontalHeaderLabels(["rep", "ended", "low side", "max drop", "duration", "cue"])
        self.rep_table.setFont(_font(12))
        self.rep_table.horizontalHeader().setFont(_font(11, bold=True))
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
        job = self._job = _Job(self)
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
        # limits as drawn in the live window: right drop up (+), left drop down (-); free side solid
        for side, sign in (("right", 1.0), ("left", -1.0)):
            xs, ys = r.thresholds[side]
            free = side == b.free_side
            self.limit_curves[side].setData(xs, sign * ys)
            self.limit_curves[side].setPen(pg.mkPen(
                COLORS["limit"], width=3 if free else 1.5,
                style=QtCore.Qt.PenStyle.SolidLine if free else QtCore.Qt.PenStyle.DashLine))
        for a, c, audible in r.cues:
            for parent in (item, ov):
                band = pg.LinearRegionItem(values=(a, c), movable=False, pen=pg.mkPen(None),
                                           brush=pg.mkBrush(*(SOUNDING_CUE if audible else SILENT_CUE)))
                band.setZValue(-10)
                parent.addItem(band, ignoreBounds=True)
                self._shapes.append((parent, band))
        finite = r.obliquity_deg[np.isfinite(r.obliquity_deg)]
        peak = max([float(np.max(np.abs(finite))) + 1.0] if finite.size else [0.0])
        peak = max(peak, *(float(np.max(ys)) + 2.0 for _, ys in r.thresholds.values()))
        half = max(10.0, 5.0 * math.ceil((peak + 1.0) / 5.0))   # room above for the rep brackets
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
            label.setFont(_font(10))
            label.setPos((start + end) / 2, y)
            for shape in (bracket, label):
                item.addItem(shape, ignoreBounds=True)
                self._shapes.append((item, shape))
        for m in r.markers:
            if m.get("t_s") is None:
                continue
            line = pg.InfiniteLine(pos=float(m["t_s"]), angle=90, pen=pg.mkPen(MARKER, width=2),
                                   label=str(m["label"]), labelOpts=dict(position=0.06, color=MARKER,
                                                                         fill=pg.mkBrush(255, 255, 255, 200)))
            line.label.setFont(_font(10))
            item.addItem(line, ignoreBounds=True)
            self._shapes.append((item, line))

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
        notes = []
        if not len(r.t_s):
            notes.append("No angle data: the block ended before calibration.")
        if r.verdict.startswith("Differs"):
            notes.append("The curve is a re-analysis with the stored settings and differs from what happened "
                         f"live (were settings changed during the block?): {r.verdict}")
        if b.status == "interrupted":
            notes.append("This recording was interrupted; everything up to then is shown.")
        if not notes:
            n_cues = len(r.cues)
            notes.append(f"{len(r.t_s)} samples, {len(r.reps)} rep{'s' * (len(r.reps) != 1)}, {n_cues} cue "
                         f"period{'s' * (n_cues != 1)} (curve computed in {r.replay_wall_s:.1f} s).")
        self.status_label.setText(" ".join(notes))
        # start at the first rep (or the first angle), where there is something to see
        first = next((float(x["t"]) - float(x.get("duration_s") or 0.0) for x in r.reps if x.get("t") is not None),
                     float(r.t_s[0]) if len(r.t_s) else 0.0)
        self.set_time(max(0.0, first - 1.0))
        self.curve_ready.emit()

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
        from host.commands.replay import config_for
        from host.gui.live_window import MainWindow
        from host.sinks.live import LiveBuffer
        from host.session.runner import Session
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
        session = Session(ReplayTransport(conn, block, speed=speed), cfg, live=live, no_data_timeout_s=math.inf)
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

SESSION_COLUMNS = ["session", "date", "exercise", "stance", "reps", "with the cue", "worst drop", "average drop",
                   "status"]


class HistoryWindow(QtWidgets.QMainWindow):
    """A patient picker, the patient's sessions, and their progress (drop per side, cued reps)."""

    def __init__(self, db_path, patient: str | None = None, parent=None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        store.connect(self.db_path).close()   # a missing or foreign file fails here, in words (StoreError)
        self.sessions: list[store.SessionInfo] = []
        self.progress_rows: list[dict] = []
        self.reviews: list[ReviewWindow] = []
        self.setWindowTitle(f"hiplevel — history ({self.db_path})")
        self.resize(1320, 900)

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        root = QtWidgets.QVBoxLayout(central)
        root.setContentsMargins(12, 8, 12, 8)

        top = QtWidgets.QHBoxLayout()
        caption = QtWidgets.QLabel("Patient")
        caption.setFont(_font(16, bold=True))
        top.addWidget(caption)
        self.patient_combo = QtWidgets.QComboBox()
        self.patient_combo.setFont(_font(16))
        self.patient_combo.setMinimumWidth(260)
        self.patient_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        top.addWidget(self.patient_combo)
        top.addSpacing(20)
        self.summary_label = QtWidgets.QLabel()
        self.summary_label.setFont(_font(13))
        top.addWidget(self.summary_label, stretch=1)
        self.reload_button = QtWidgets.QPushButton("↻ Reload")
        self.reload_button.setFont(_font(12))
        self.reload_button.setToolTip("Read the database again (new recordings)")
        self.reload_button.clicked.connect(self.reload)
        top.addWidget(self.reload_button)
        root.addLayout(top)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self._build_table())
        split.addWidget(self._build_progress())
        split.setSizes([330, 520])
        root.addWidget(split, stretch=1)

        self.status_label = QtWidgets.QLabel()
        self.status_label.setFont(_font(12))
        root.addWidget(self.status_label)

        self.patient_combo.currentTextChanged.connect(self.show_patient)
        self.reload(patient)

    # -- construction ------------------------------------------------------------------------------

    def _build_table(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        head = QtWidgets.QHBoxLayout()
        caption = QtWidgets.QLabel("Sessions — double-click one (or select it and press Open) to review it")
        caption.setFont(_font(13, bold=True))
        head.addWidget(caption, stretch=1)
        self.open_button = QtWidgets.QPushButton("Open session")
        self.open_button.setFont(_font(12))
        self.open_button.clicked.connect(self.open_selected)
        head.addWidget(self.open_button)
        col.addLayout(head)
        self.table = QtWidgets.QTableWidget(0, len(SESSION_COLUMNS))
        self.table.setHorizontalHeaderLabels(SESSION_COLUMNS)
        self.table.setFont(_font(12))
        self.table.horizontalHeader().setFont(_font(12, bold=True))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.cellDoubleClicked.connect(lambda row, _c: self.open_session(self._row_session(row)))
        self.table.itemSelectionChanged.connect(self._mark_selected)
        col.addWidget(self.table)
        return box

    def _build_progress(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        head = QtWidgets.QHBoxLayout()
        caption = QtWidgets.QLabel("Progress")
        caption.setFont(_font(13, bold=True))
        head.addWidget(caption)
        self.exercise_combo = QtWidgets.QComboBox()
        self.exercise_combo.setFont(_font(12))
        self.exercise_combo.setToolTip("Exercises are charted apart: a hip dip drops on purpose, a squat should not")
        self.exercise_combo.currentIndexChanged.connect(lambda _i: self._draw_progress())
        head.addWidget(self.exercise_combo)
        head.addStretch(1)
        col.addLayout(head)

        self.drop_plot = pg.PlotWidget(background=COLORS["background"])
        self.reps_plot = pg.PlotWidget(background=COLORS["background"])
        for w, left in ((self.drop_plot, "drop (°)"), (self.reps_plot, "reps")):
            item = w.getPlotItem()
            item.setMouseEnabled(x=False, y=False)
            item.setMenuEnabled(False)
            item.hideButtons()
            item.showGrid(y=True, alpha=0.2)
            for name in ("left", "bottom"):
                axis = item.getAxis(name)
                axis.setPen(pg.mkPen(COLORS["axis"]))
                axis.setTextPen(pg.mkPen(COLORS["axis"]))
                axis.setStyle(tickFont=_font(11))
            item.setLabel("left", left, color=COLORS["axis"], **{"font-size": "12pt"})
            item.getAxis("left").setWidth(64)
        self.reps_plot.setXLink(self.drop_plot)
        self.reps_plot.setMaximumHeight(210)
        self.progress_curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for side in ("left", "right"):
            color, symbol = SIDE_STYLE[side]
            for kind, name, style, width in (("worst", "worst drop", QtCore.Qt.PenStyle.SolidLine, 3),
                                             ("mean", "average drop", QtCore.Qt.PenStyle.DashLine, 2)):
                c = self.drop_plot.plot([], [], pen=pg.mkPen(color, width=width, style=style), symbol=symbol,
                                        symbolSize=11 if kind == "worst" else 8, symbolPen=pg.mkPen(color),
                                        symbolBrush=pg.mkBrush(color if kind == "worst" else "#ffffff"),
                                        connect="finite")
                self.progress_curves[(side, kind)] = c
        self.reps_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(REPS_BAR), pen=pg.mkPen(None))
        self.cued_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(COLORS["cue"]),
                                         pen=pg.mkPen(None))
        self.reps_plot.addItem(self.reps_bars)
        self.reps_plot.addItem(self.cued_bars)
        self._bar_labels: list = []
        self.selected_lines = []
        for w in (self.drop_plot, self.reps_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(COLORS["axis"], width=1, style=QtCore.Qt.PenStyle.DotLine))
            line.hide()
            w.addItem(line, ignoreBounds=True)
            self.selected_lines.append(line)
        self.progress_legend = QtWidgets.QLabel()
        self.progress_legend.setFont(_font(11))
        self.progress_legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        col.addWidget(self.progress_legend)
        col.addWidget(self.drop_plot, stretch=3)
        self.reps_caption = QtWidgets.QLabel(
            f'Reps per session: <span style="color:{COLORS["cue"]}; font-weight:bold">███</span> with the cue, '
            f'<span style="color:{REPS_BAR}; font-weight:bold">███</span> without')
        self.reps_caption.setFont(_font(11))
        self.reps_caption.setTextFormat(QtCore.Qt.TextFormat.RichText)
        col.addWidget(self.reps_caption)
        col.addWidget(self.reps_plot, stretch=2)
        return box

    # -- data ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _db(self):
        # A connection per read, not one held open: an idle reader would keep a recording's file in
        # WAL mode after it closes (store.close_recording cannot switch back while others have it open).
        conn = store.connect(self.db_path)
        try:
            yield conn
        finally:
            conn.close()

    def reload(self, patient: str | None = None) -> None:
        """Read the patients again and show `patient` (default: the one shown, else the most recent)."""
        if not isinstance(patient, str):
            patient = self.patient_combo.currentText() or None
        try:
            with self._db() as conn:
                patients = store.list_patients(conn)
                if patient is None or patient not in patients:
                    last = store.list_sessions(conn)
                    patient = last[-1].patient if last else (patients[0] if patients else None)
        except (sqlite3.Error, store.StoreError) as e:
            self.status_label.setText(str(e) if isinstance(e, store.StoreError) else store.explain(e, self.db_path))
            return
        self.patient_combo.blockSignals(True)
        self.patient_combo.clear()
        self.patient_combo.addItems(patients)
        self.patient_combo.blockSignals(False)
        if patient is None:
            self.summary_label.setText("No sessions recorded yet.")
            self.show_patient("")
            return
        self.patient_combo.setCurrentText(patient)
        self.show_patient(patient)

    def show_patient(self, patient: str) -> None:
        status = f"Database: {self.db_path}"
        try:
            with self._db() as conn:
                self.sessions = store.list_sessions(conn, patient) if patient else []
                self.progress_rows = store.progress(conn, patient) if patient else []
        except (sqlite3.Error, store.StoreError) as e:
            status = str(e) if isinstance(e, store.StoreError) else store.explain(e, self.db_path)
            self.sessions, self.progress_rows = [], []
        self._fill_table()
        exercises = sorted({r["exercise"] for r in self.progress_rows})
        # chart first the exercise with the most sessions (ties: the latest), where progress shows
        counts = {ex: sum(1 for r in self.progress_rows if r["exercise"] == ex) for ex in exercises}
        order = {r["exercise"]: i for i, r in enumerate(self.progress_rows)}
        latest = max(exercises, key=lambda ex: (counts[ex], order[ex])) if exercises else None
        self.exercise_combo.blockSignals(True)
        self.exercise_combo.clear()
        for ex in exercises:
            self.exercise_combo.addItem(exercise_name(ex), ex)
        if latest is not None:
            self.exercise_combo.setCurrentIndex(exercises.index(latest))
        self.exercise_combo.blockSignals(False)
        self.exercise_combo.setVisible(len(exercises) > 0)
        self._draw_progress()
        if patient:
            n = len(self.sessions)
            reps = sum(s.reps for s in self.sessions)
            cued = sum(s.cued_reps for s in self.sessions)
            span = ""
            if self.sessions:
                span = (f", {store.local_time(self.sessions[0].started_utc, '%d %b %Y')} to "
                        f"{store.local_time(self.sessions[-1].started_utc, '%d %b %Y')}")
            self.summary_label.setText(f"{n} session{'s' * (n != 1)}{span} · {reps} reps, {cued} with the cue")
        self.status_label.setText(status)

    def _fill_table(self) -> None:
        by_session: dict[int, list[dict]] = {}
        for r in self.progress_rows:
            by_session.setdefault(r["session"], []).append(r)
        t = self.table
        t.setRowCount(len(self.sessions))
        # newest first: the session the therapist most likely wants is at the top
        for row, s in enumerate(reversed(self.sessions)):
            sides = merge_sides(by_session.get(s.id, []))
            cells = [str(s.id), store.local_time(s.started_utc),
                     ", ".join(sorted({exercise_name(b.exercise) for b in s.blocks})) or "–",
                     ", ".join(sorted({b.stance for b in s.blocks})) or "–",
                     str(s.reps), str(s.cued_reps), drops_text(sides, "worst_drop_deg"),
                     drops_text(sides, "mean_drop_deg"), s.status]
            for col, text in enumerate(cells):
                cell = QtWidgets.QTableWidgetItem(text)
                cell.setData(QtCore.Qt.ItemDataRole.UserRole, s.id)
                if col in (0, 4, 5):
                    cell.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                if col == 8 and s.status != "complete":
                    cell.setForeground(QtGui.QColor("#b35c00"))
                t.setItem(row, col, cell)
        t.resizeColumnsToContents()
        self.open_button.setEnabled(bool(self.sessions))

    def _draw_progress(self) -> None:
        ex = self.exercise_combo.currentData()
        rows = [r for r in self.progress_rows if r["exercise"] == ex]
        self.chart_rows = rows
        xs = np.arange(1, len(rows) + 1, dtype=float)
        for (side, kind), c in self.progress_curves.items():
            key = "worst_drop_deg" if kind == "worst" else "mean_drop_deg"
            ys = np.array([r["sides"].get(side, {}).get(key) for r in rows], dtype=float)
            has = np.isfinite(ys).any()
            c.setData(xs if has else [], ys if has else [])
            c.setVisible(bool(has))
        # the legend names only the sides this exercise has (outside the plot: it never hides a point)
        parts = []
        for side in ("left", "right"):
            if self.progress_curves[(side, "worst")].isVisible():
                color, symbol = SIDE_STYLE[side]
                full, empty = ("●", "○") if symbol == "o" else ("■", "□")
                span = f'<span style="color:{color}; font-weight:bold">'
                parts.append(f"{span}━━{full}━━</span>&nbsp;{side} hip low: worst drop &nbsp; "
                             f"{span}╌╌{empty}╌╌</span>&nbsp;average drop")
        self.progress_legend.setText("&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;".join(parts) or "No reps with a drop to chart.")
        reps = np.array([r["reps"] for r in rows], dtype=float)
        cued = np.array([r["cued_reps"] for r in rows], dtype=float)
        self.reps_bars.setOpts(x=xs, height=reps, width=0.6)
        self.cued_bars.setOpts(x=xs, height=cued, width=0.6)
        for lab in self._bar_labels:
            self.reps_plot.removeItem(lab)
        self._bar_labels = []
        for x, n, c in zip(xs, reps, cued):
            lab = pg.TextItem(f"{int(c)}/{int(n)}", color=COLORS["text"], anchor=(0.5, 1.0))
            lab.setFont(_font(10))
            lab.setPos(x, n)
            self.reps_plot.addItem(lab)
            self._bar_labels.append(lab)

        labels = date_labels(rows)
        ticks = [(float(x), lab) for x, lab in zip(xs, labels)]
        if len(ticks) > 12:  # keep dates readable: every k-th label
            k = math.ceil(len(ticks) / 12)
            ticks = ticks[::k]
        for w in (self.drop_plot, self.reps_plot):
            w.getPlotItem().getAxis("bottom").setTicks([ticks, []])
        self.drop_plot.getPlotItem().setXRange(0.4, max(len(rows), 1) + 0.6, padding=0)
        vals = [v for r in rows for s in r["sides"].values() for v in (s["worst_drop_deg"], s["mean_drop_deg"])
                if v is not None]
        top = max(8.0, math.ceil((max(vals, default=0.0) + 1.5) / 2.0) * 2.0)
        self.drop_plot.getPlotItem().setYRange(0, top, padding=0)
        self.reps_plot.getPlotItem().setYRange(0, max(4.0, float(reps.max(initial=0)) * 1.25), padding=0)
        self._mark_selected()

    # -- opening a session -------------------------------------------------------------------------

    def _row_session(self, row: int) -> store.SessionInfo | None:
        cell = self.table.item(row, 0)
        if cell is None:
            return None
        sid = cell.data(QtCore.Qt.ItemDataRole.UserRole)
        return next((s for s in self.sessions if s.id == sid), None)

    def _mark_selected(self) -> None:
        s = self._row_session(self.table.currentRow()) if self.table.selectedItems() else None
        x = next((i + 1 for i, r in enumerate(getattr(self, "chart_rows", [])) if s is not None
                  and r["session"] == s.id), None)
        for line in self.selected_lines:
            line.setVisible(x is not None)
            if x is not None:
                line.setValue(x)

    def open_selected(self) -> None:
        self.open_session(self._row_session(self.table.currentRow()))

    def open_session(self, session: store.SessionInfo | None) -> ReviewWindow | None:
        """A review window for the session (several may be open side by side, to compare)."""
        if session is None:
            return None
        w = ReviewWindow(self.db_path, session)
        self.reviews.append(w)
        w.show()
        return w

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        for w in self.reviews:
            w.close()
        super().closeEvent(event)


def run_history(db_path, patient: str | None = None) -> int:
    """Show the history window until it is closed."""
    import signal
    import sys
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0] if sys.argv else "hiplevel"])
    window = HistoryWindow(db_path, patient)
    window.show()
    # Ctrl+C in the terminal closes the window; a slow timer lets Python run the signal handler.
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    app.setQuitOnLastWindowClosed(True)
    try:
        return int(app.exec())
    finally:
        wake.stop()
        signal.signal(signal.SIGINT, previous)
