"""The live window: a plot of pelvic obliquity over the last 10 s, big patient text, therapist controls.

Data enters only through a `host.sinks.live.LiveBuffer`: the pipeline thread appends samples and updates its
`LiveStatus`; this window reads both on its own QTimer (`MainWindow.refresh`) and never blocks the
pipeline, which in turn never touches a widget. Data leaves only as calls on the optional `commands`
object (`recalibrate()`, `set_threshold(side, deg)`, `set_muted(bool)`, `end_set()`, `set_patient(label)`,
`add_marker(label)`,
each optional), made from the GUI thread; the object makes them thread-safe. The patient field appears
only when the window is also given the known patients (`patients=`), i.e. when the session is recorded.

`run_gui` runs the window as an application; host.gui.display.qt_display_available tells the caller
whether a real display exists, so it can choose the console view instead.
"""
from __future__ import annotations

import html
import logging
import math
import signal
import sys
import threading
import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from host.processing.exercise import THRESHOLD_DEFAULT_DEG, THRESHOLD_MAX_DEG, THRESHOLD_MIN_DEG
from host.gui.qt_common import COLORS, fixed_plot, font, swatch, window_frame
from host.sinks.live import LiveBuffer, LiveStatus, describe_obliquity

log = logging.getLogger(__name__)

PLOT_WINDOW_S = 10.0
REFRESH_HZ = 60.0        # redraw rate, independent of the sample rate (docs/architecture.md, library facts: fixed axis, 59 fps)
BASE_RANGE_DEG = 15.0    # y axis spans +-15 deg unless the data or a threshold needs more
LOSS_WINDOW_S = 5.0      # packet loss rate is judged over this much recent time
LOSS_WARN, LOSS_BAD = 0.01, 0.05   # lost fraction: amber from 1 %, red from 5 %

LINK_TEXT = {
    "connecting": "Connecting to the sensor…",
    "streaming": "Sensor connected",
    "disconnected": "Sensor disconnected",
    "reconnecting": "Looking for the sensor…",
    "ended": "Recording finished",
    "error": "Sensor error",
}

# Rep and set-summary events (host.processing.exercise) are shown generically: known keys get friendly names and
# come first in this order, unknown keys follow in the event's own order, bookkeeping keys are hidden.
EVENT_LABELS = {
    "drop_deg": "Swing side drop",   # walking steps (host.processing.gait)
    "swing_side": "Swing side",
    "foot": "Foot down",
    "max_drop_deg": "Deepest drop",
    "worst_drop_deg": "Worst drop",
    "average_drop_deg": "Average drop",
    "reps": "Reps",
    "cued_reps": "Reps with a cue",
    "returned_to_level": "Back to level",
    "above_level_deg": "Rose above level",
    "time_past_threshold_s": "Time past limit",
    "duration_s": "Duration",
    "hold_s": "Hold",
    "max_forward_tilt_deg": "Forward lean",
    "cued": "Cue triggered",
    "reached_target": "Reached the target",
    "feedback_given": "Tone played",
    "feedback_scheduled": "Cue scheduled",
    "cues": "Cues",
    "depth_deg": "Depth",
    "depth": "Depth",
    "low_side": "Low side",
    "threshold_deg": "Limit",
    "index": "Rep number",
    "set": "Set",
}
HIDDEN_EVENT_KEYS = {"event", "t", "exercise", "contact_t", "end_t", "heading_change_deg", "past_threshold",
                     "during_calibration"}
MAX_EVENT_ROWS = 6        # rows shown in the side panel; the tooltip lists them all
# Unit suffix of a key name -> how the number is written (conventions: units are in names).
UNIT_SUFFIX = {"deg": "{:.1f}°", "s": "{:.1f} s", "ms": "{:.0f} ms", "pct": "{:.0f} %", "hz": "{:.0f} Hz"}


def format_event_value(key: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.floating, np.integer)):
        unit = key.rsplit("_", 1)[-1].lower() if "_" in key else ""
        fmt = UNIT_SUFFIX.get(unit, "{:.1f}" if isinstance(value, (float, np.floating)) else "{}")
        return fmt.format(value)
    return str(value)


def event_label(key: str) -> str:
    if key in EVENT_LABELS:
        return EVENT_LABELS[key]
    words = key.split("_")
    if len(words) > 1 and words[-1].lower() in UNIT_SUFFIX:
        words = words[:-1]
    return " ".join(words).capitalize()


def format_event(event: dict) -> list[tuple[str, str]]:
    """(label, value) rows for a rep or set-summary dict: known keys first, then the rest, none lost."""
    order = {k: i for i, k in enumerate(EVENT_LABELS)}
    keys = [k for k in event if str(k) not in HIDDEN_EVENT_KEYS and event[k] is not None]
    keys.sort(key=lambda k: order.get(str(k), len(order)))     # stable: unknown keys keep their order
    return [(event_label(str(k)), format_event_value(str(k), event[k])) for k in keys]


def _rows_html(rows: list[tuple[str, str]]) -> str:
    return "<table cellspacing='0' cellpadding='1'>" + "".join(
        f"<tr><td style='color:{COLORS['muted_text']}'>{html.escape(k)}</td>"
        f"<td>&nbsp;&nbsp;<b>{html.escape(v)}</b></td></tr>" for k, v in rows) + "</table>"


# ----------------------------------------------------------------------------------------------------
# the window

def _set_span(line, start: float) -> None:
    """Draw `line` from `start` (fraction of the plot's width) to the right edge. InfiniteLine caches
    its bounding rectangle and setSpan does not drop it (pyqtgraph 0.13), so drop it here."""
    if line.span != (start, 1.0):
        line.prepareGeometryChange()
        line.setSpan(start, 1.0)
        line._boundingRect = None
        line.update()


class MainWindow(QtWidgets.QMainWindow):
    """Live view of one session. `refresh()` runs on a timer; everything else reacts to it."""

    closed = QtCore.Signal()

    def __init__(self, live: LiveBuffer, commands=None, refresh_hz: float = REFRESH_HZ, parent=None,
                 patients: list[str] | None = None, patient: str | None = None):
        super().__init__(parent)
        self.live = live
        self.commands = commands
        self._patients = patients        # known patient labels; None: no patient field
        self.patient = patient           # the label the session is recorded under
        self.redraws = 0                 # refresh() calls that redrew the curve (soak tests count them)
        self._data_key = None            # (n, t_latest, tilt shown): skip redraw when nothing changed
        self._y_range = None
        self._thresholds = None          # (left, right, free side) last drawn
        self._texts: dict = {}            # label -> text (and style) last set, to skip relayouts
        self._loss_history: deque[tuple[float, int, int]] = deque()
        self._loss_level = "ok"
        self._muted = False
        self._ended_shown = False
        self._markers = 0                # therapist's markers set in this window

        root = window_frame(self, "hiplevel", 1200, 760)

        self.ended_banner = QtWidgets.QLabel()
        self.ended_banner.setFont(font(18, bold=True))
        self.ended_banner.setStyleSheet("background:#343a40; color:white; padding:8px; border-radius:6px")
        self.ended_banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.ended_banner.hide()
        root.addWidget(self.ended_banner)

        root.addLayout(self._build_header())

        body = QtWidgets.QHBoxLayout()
        body.setSpacing(10)
        plot_column = QtWidgets.QVBoxLayout()
        plot_column.addWidget(self._build_plot(), stretch=1)
        from host.gui.step_bars import StepBars  # walking: per-step drops under the curve
        self.step_bars = StepBars()
        self.step_bars.widget.setVisible(live.status.exercise == "walk")
        plot_column.addWidget(self.step_bars.widget)
        self.legend_label = QtWidgets.QLabel()
        self.legend_label.setFont(font(11))
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        plot_column.addWidget(self.legend_label)
        body.addLayout(plot_column, stretch=1)
        body.addWidget(self._build_side_panel())
        root.addLayout(body, stretch=1)

        status_row = QtWidgets.QHBoxLayout()
        self.status_label = QtWidgets.QLabel()
        self.status_label.setFont(font(13))
        self.status_label.setWordWrap(True)
        self.loss_label = QtWidgets.QLabel()
        self.loss_label.setFont(font(13, bold=True))
        self.loss_label.hide()
        status_row.addWidget(self.status_label, stretch=1)
        status_row.addWidget(self.loss_label)
        root.addLayout(status_row)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(max(1, round(1000.0 / refresh_hz)))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    # -- construction ------------------------------------------------------------------------------

    def _build_header(self) -> QtWidgets.QLayout:
        header = QtWidgets.QHBoxLayout()
        left = QtWidgets.QVBoxLayout()
        left.setSpacing(0)
        self.angle_label = QtWidgets.QLabel("–")
        self.angle_label.setFont(font(44, bold=True))
        self.angle_label.setMinimumWidth(520)
        self.angle_label.setWordWrap(True)  # calibration prompts are longer than an angle
        self.exercise_label = QtWidgets.QLabel()
        self.exercise_label.setFont(font(13))
        self.exercise_label.setStyleSheet(f"color:{COLORS['muted_text']}")
        left.addWidget(self.angle_label)
        left.addWidget(self.exercise_label)
        header.addLayout(left, stretch=1)

        self.cue_label = QtWidgets.QLabel()
        self.cue_label.setFont(font(20, bold=True))
        self.cue_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.cue_label.setMinimumWidth(200)
        header.addWidget(self.cue_label, alignment=QtCore.Qt.AlignmentFlag.AlignVCenter)
        header.addSpacing(24)

        reps = QtWidgets.QVBoxLayout()
        reps.setSpacing(0)
        caption = self.reps_caption = QtWidgets.QLabel("Steps" if self.live.status.exercise == "walk" else "Reps")
        caption.setFont(font(13))
        caption.setStyleSheet(f"color:{COLORS['muted_text']}")
        caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.reps_label = QtWidgets.QLabel("0")
        self.reps_label.setFont(font(48, bold=True))
        self.reps_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.reps_label.setMinimumWidth(140)
        # the last rep's headline number, large enough to read from the exercise spot
        self.last_rep_big = QtWidgets.QLabel("")
        self.last_rep_big.setFont(font(20, bold=True))
        self.last_rep_big.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
        reps.addWidget(caption)
        reps.addWidget(self.reps_label)
        reps.addWidget(self.last_rep_big)
        header.addLayout(reps)
        return header

    def _build_plot(self) -> pg.PlotWidget:
        self.plot = pg.PlotWidget(background=COLORS["background"])
        # A fixed relative axis without a grid: scrolling axes and grids cost 3-4x the CPU (docs/architecture.md, library facts).
        item = fixed_plot(self.plot)
        item.showGrid(x=False, y=False)
        item.setXRange(-PLOT_WINDOW_S, 0.0, padding=0)
        item.layout.setContentsMargins(4, 12, 16, 4)   # room for the overhanging end labels
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(COLORS["axis"]))
            axis.setTextPen(pg.mkPen(COLORS["axis"]))
            # Let the end labels (-10, 0, +-15) overhang the axis instead of being dropped.
            axis.setStyle(tickFont=font(11), hideOverlappingLabels=False)
        item.getAxis("bottom").setTickSpacing(2.0, 1.0)
        label_style = {"color": COLORS["axis"], "font-size": "12pt"}
        item.setLabel("left", "left hip low  ←  degrees  →  right hip low", **label_style)
        item.setLabel("bottom", "seconds (0 = now)", **label_style)

        self.level_line = pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(COLORS["level"], width=1))
        self.right_line = pg.InfiniteLine(pos=THRESHOLD_DEFAULT_DEG, angle=0)
        self.left_line = pg.InfiniteLine(pos=-THRESHOLD_DEFAULT_DEG, angle=0)
        for line in (self.level_line, self.right_line, self.left_line):
            item.addItem(line, ignoreBounds=True)
        label_kw = dict(position=0.02, color=COLORS["limit"], fill=pg.mkBrush(255, 255, 255, 150))
        self._line_labels = {
            "right": pg.InfLineLabel(self.right_line, "", anchors=[(0, 1), (0, 1)], **label_kw),
            "left": pg.InfLineLabel(self.left_line, "", anchors=[(0, 0), (0, 0)], **label_kw),
        }
        for lab in self._line_labels.values():
            lab.setFont(font(10))
        # A limit changed live: the line above spans from the change to now, and these step lines
        # draw the earlier limits under what came before, so each past rep stays against the line
        # it was judged by.
        self.limit_steps = {side: item.plot([], []) for side in ("left", "right")}
        for steps in self.limit_steps.values():
            steps.setVisible(False)

        curve_kw = dict(connect="finite", clipToView=True, autoDownsample=True, downsampleMethod="peak")
        self.tilt_curve = item.plot([], [], pen=pg.mkPen(COLORS["tilt"], width=1.5), **curve_kw)
        self.tilt_curve.setVisible(False)
        self.curve = item.plot([], [], pen=pg.mkPen(COLORS["curve"], width=2), **curve_kw)
        # Cue periods: the same samples drawn over the curve, thick and orange, NaN outside the cue.
        self.cue_curve = item.plot([], [], pen=pg.mkPen(COLORS["cue"], width=4), **curve_kw)

        vb = item.getViewBox()
        self._corner_labels = []
        for text, anchor in (("▲ right hip low", (0, 0)), ("▼ left hip low", (0, 1))):
            t = pg.TextItem(text, color=COLORS["muted_text"], anchor=anchor)
            t.setFont(font(10))
            t.setParentItem(vb)       # in view-box pixels, so it stays in the corner whatever the range
            self._corner_labels.append(t)
        vb.sigResized.connect(self._place_corner_labels)
        self._set_y_range(BASE_RANGE_DEG)
        return self.plot

    def _place_corner_labels(self, *_):
        rect = self.plot.getPlotItem().getViewBox().boundingRect()
        self._corner_labels[0].setPos(rect.right() - 140, rect.top() + 2)
        self._corner_labels[1].setPos(rect.right() - 140, rect.bottom() - 2)

    def _build_side_panel(self) -> QtWidgets.QWidget:
        panel = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(panel)
        col.setContentsMargins(0, 0, 4, 0)
        # In a scroll area, so whatever the rep events hold never makes the window taller than the screen.
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(285)

        self.rep_box = rep_box = QtWidgets.QGroupBox("Last rep")
        rep_box.setFont(font(12, bold=True))
        rep_layout = QtWidgets.QVBoxLayout(rep_box)
        self.last_rep_label = QtWidgets.QLabel("No reps yet")
        self.last_rep_label.setFont(font(13))
        self.last_rep_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.last_rep_label.setWordWrap(True)
        rep_layout.addWidget(self.last_rep_label)
        col.addWidget(rep_box)

        self.set_box = QtWidgets.QGroupBox("Last set")
        self.set_box.setFont(font(12, bold=True))
        set_layout = QtWidgets.QVBoxLayout(self.set_box)
        self.last_set_label = QtWidgets.QLabel()
        self.last_set_label.setFont(font(12))
        self.last_set_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        set_layout.addWidget(self.last_set_label)
        self.set_box.hide()
        col.addWidget(self.set_box)

        col.addWidget(self._build_settings())
        col.addStretch(1)
        return scroll

    def _build_settings(self) -> QtWidgets.QGroupBox:
        """The therapist's controls: only those the `commands` object offers are shown."""
        settings = QtWidgets.QGroupBox("Settings")
        settings.setFont(font(12, bold=True))
        form = QtWidgets.QFormLayout(settings)
        self.threshold_spins: dict[str, QtWidgets.QDoubleSpinBox] = {}
        self.mute_check = None
        self.patient_combo = None
        if self._patients is not None and self._offers("set_patient"):
            self._build_patient_field(form)
        if self._offers("set_threshold"):
            for side in ("right", "left"):
                spin = QtWidgets.QDoubleSpinBox()
                spin.setRange(THRESHOLD_MIN_DEG, THRESHOLD_MAX_DEG)
                spin.setSingleStep(0.5)
                spin.setDecimals(1)
                spin.setSuffix(" °")
                spin.setKeyboardTracking(False)   # one command per finished edit, not per keystroke
                spin.setFont(font(13))
                spin.setToolTip(f"Cue when the {side} hip drops this far below level")
                spin.valueChanged.connect(lambda deg, side=side: self._command("set_threshold", side, deg))
                form.addRow(self._form_label(f"{side.capitalize()} hip limit"), spin)
                self.threshold_spins[side] = spin
        if self._offers("set_muted"):
            self.mute_check = QtWidgets.QCheckBox("Mute the cue tone")
            self.mute_check.setFont(font(12))
            self.mute_check.toggled.connect(self._on_mute)
            form.addRow(self.mute_check)
        self.recalibrate_button = self._command_button(form, "recalibrate", "Recalibrate")
        self.end_set_button = self._command_button(form, "end_set", "End this set")
        # A therapist's marker ("she felt pain here"): stored with the recording, shown in the
        # review and the report. M in the window does the same.
        self.marker_button = self._command_button(form, "add_marker", "Mark this moment (M)", self._on_marker)
        self.tilt_check = QtWidgets.QCheckBox("Show forward tilt")
        self.tilt_check.setFont(font(12))
        self.tilt_check.toggled.connect(self._on_tilt)
        form.addRow(self.tilt_check)
        return settings

    def _offers(self, name: str) -> bool:
        return self.commands is not None and callable(getattr(self.commands, name, None))

    def _command_button(self, form: QtWidgets.QFormLayout, name: str, text: str, slot=None):
        """A push button for command `name` when the commands object offers it, else None."""
        if not self._offers(name):
            return None
        button = QtWidgets.QPushButton(text)
        button.setFont(font(12))
        button.clicked.connect(slot or (lambda: self._command(name)))
        form.addRow(button)
        return button

    def _build_patient_field(self, form: QtWidgets.QFormLayout) -> None:
        # Editable: pick a known pseudonymous label or type a new one; the recording follows it.
        combo = self.patient_combo = QtWidgets.QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)  # added only once accepted
        combo.setFont(font(13))
        combo.addItems(sorted(set(self._patients) | ({self.patient} if self.patient else set())))
        self._show_patient_label(self.patient or "")
        combo.setToolTip("Pseudonymous patient label (e.g. P-017) this session is recorded under")
        combo.activated.connect(lambda _i: self._on_patient(combo.currentText()))
        combo.lineEdit().editingFinished.connect(lambda: self._on_patient(combo.currentText()))
        form.addRow(self._form_label("Patient"), combo)
        self.patient_note = QtWidgets.QLabel()
        self.patient_note.setFont(font(10))
        self.patient_note.setWordWrap(True)
        self._show_patient_note(f"Recording as {self.patient}" if self.patient else "")
        form.addRow(self.patient_note)

    def _show_patient_label(self, label: str) -> None:
        # the item itself when known (so the arrow keys step from it), else just the text
        combo = self.patient_combo
        combo.blockSignals(True)
        index = combo.findText(label)
        if index >= 0:
            combo.setCurrentIndex(index)
        combo.setEditText(label)
        combo.blockSignals(False)

    def _show_patient_note(self, text: str, error: bool = False) -> None:
        self.patient_note.setText(text)
        self.patient_note.setStyleSheet(f"color:{COLORS['bad_bg'] if error else COLORS['muted_text']}")

    def _on_patient(self, text: str) -> None:
        label = text.strip()
        if label == self.patient:
            return
        try:
            self.commands.set_patient(label)
        except Exception as e:  # noqa: BLE001 - a refused label must not take the live view down
            self._show_patient_note(f"Not changed: {e}", error=True)
            self._show_patient_label(self.patient or "")
            return
        self.patient = label
        if self.patient_combo.findText(label) < 0:
            self.patient_combo.addItem(label)
        self._show_patient_label(label)
        self._show_patient_note(f"Recording as {label}")

    @staticmethod
    def _form_label(text: str) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(text)
        label.setFont(font(12))
        return label

    # -- user actions ------------------------------------------------------------------------------

    def _command(self, name: str, *args) -> None:
        try:
            getattr(self.commands, name)(*args)
        except Exception as e:  # noqa: BLE001 - a failed command must not take the live view down
            log.exception("command %s%r failed", name, args)
            self._set_text(self.status_label, f"Could not {name.replace('_', ' ')}: {e}")

    def _on_marker(self) -> None:
        if self._ended_shown:
            return
        self._markers += 1
        label = f"Marker {self._markers}"
        self._command("add_marker", label)
        self._set_text(self.status_label, f"{label} set: it is stored with the recording.")

    def _on_mute(self, muted: bool) -> None:
        self._muted = muted
        self._command("set_muted", muted)

    def _on_tilt(self, shown: bool) -> None:
        self.tilt_curve.setVisible(shown)
        self._update_legend()
        self._data_key = None
        self.refresh()

    # -- periodic update ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the buffer and status once and bring every widget up to date."""
        # Status first: whatever it says has already been appended, so an ended status sees all data.
        st = self.live.status_copy()
        t, obl, fwd, _cue = data = self.live.snapshot(PLOT_WINDOW_S)
        self._update_plot(*data)
        if st.exercise == "walk":
            self.step_bars.update(st, float(t[-1]) if len(t) else 0.0,
                                  self.plot.getPlotItem().getAxis("left").width())
        self._update_thresholds(st)
        self._update_limit_steps(st, float(t[-1]) if len(t) else None)
        self._sync_spins(st)
        self._update_y_range(obl, fwd, st)
        self._update_texts(st)
        if st.ended:
            self._show_ended(st)

    def _update_plot(self, t, obl, fwd, cue) -> None:
        shown = self.tilt_check.isChecked()
        key = (len(t), float(t[-1]) if len(t) else None, shown)
        if key == self._data_key:
            return
        self._data_key = key
        x = t - t[-1] if len(t) else t
        self.curve.setData(x, obl)
        self.cue_curve.setData(x, np.where(cue, obl, np.nan))
        if shown:
            self.tilt_curve.setData(x, fwd)
        self.redraws += 1

    def _update_thresholds(self, st: LiveStatus) -> None:
        key = (st.threshold_left_deg, st.threshold_right_deg, st.free_side)
        if key == self._thresholds:
            return
        self._thresholds = key
        self.right_line.setValue(st.threshold_right_deg)
        self.left_line.setValue(-st.threshold_left_deg)
        for side, line, value in (("right", self.right_line, st.threshold_right_deg),
                                  ("left", self.left_line, st.threshold_left_deg)):
            free = side == st.free_side
            line.setPen(pg.mkPen(COLORS["limit"], width=3 if free else 1.5,
                                 style=QtCore.Qt.PenStyle.SolidLine if free else QtCore.Qt.PenStyle.DashLine))
            line.setZValue(5 if free else 4)
            self._line_labels[side].setFormat(
                f"{side} hip limit {value:g}°" + (" (free side)" if free else ""))
        self._update_legend()

    def _update_limit_steps(self, st: LiveStatus, t_now: float | None) -> None:
        """Each side's limit over the plot's window as it was at each moment (see limit_steps)."""
        for side, line in (("right", self.right_line), ("left", self.left_line)):
            sign = 1.0 if side == "right" else -1.0
            changes = [c for c in st.threshold_changes if c[1] == side]
            steps = self.limit_steps[side]
            x_last = (changes[-1][0] - t_now) if changes and t_now is not None else -math.inf
            if x_last <= -PLOT_WINDOW_S:     # no change within the window: one straight line
                _set_span(line, 0.0)
                self._line_labels[side].setPosition(0.02)
                steps.setVisible(False)
                continue
            start = min(1.0, (x_last + PLOT_WINDOW_S) / PLOT_WINDOW_S)
            _set_span(line, start)
            self._line_labels[side].setPosition(min(0.7, start + 0.02))  # over the line it names
            # the limit in force before each change inside the window, from the window's left edge
            inside = [c for c in changes if c[0] - t_now > -PLOT_WINDOW_S]
            xs, ys = [-PLOT_WINDOW_S], [inside[0][2]]
            for i, (t_c, _, before, after) in enumerate(inside):
                xs += [t_c - t_now]
                ys += [before]
                if i + 1 < len(inside):
                    xs += [t_c - t_now]
                    ys += [after]
            steps.setData(np.array(xs), sign * np.array(ys))
            steps.setPen(line.pen)
            steps.setZValue(line.zValue())
            steps.setVisible(True)

    def _sync_spins(self, st: LiveStatus) -> None:
        # The pipeline's value wins (it may clamp or refuse a request), except while the user edits.
        for side, value in (("left", st.threshold_left_deg), ("right", st.threshold_right_deg)):
            spin = self.threshold_spins.get(side)
            if spin is not None and not spin.hasFocus() and spin.value() != value:
                spin.blockSignals(True)   # reflecting the pipeline's value is not a new command
                spin.setValue(value)
                spin.blockSignals(False)

    def _update_legend(self) -> None:
        if self._thresholds is None:
            return
        free = self._thresholds[2]
        other = "left" if free == "right" else "right"
        parts = [swatch(COLORS["curve"], "pelvic level"), swatch(COLORS["cue"], "cue sounding"),
                 swatch(COLORS["limit"], f"{free} hip limit (free side)"),
                 swatch(COLORS["limit"], f"{other} hip limit", dashed=True)]
        if self.tilt_check.isChecked():
            parts.append(swatch(COLORS["tilt"], "forward tilt"))
        self._set_text(self.legend_label, "&nbsp;&nbsp;&nbsp;".join(parts))

    def _update_y_range(self, obl, fwd, st: LiveStatus) -> None:
        peak = max(st.threshold_left_deg, st.threshold_right_deg) + 2.0
        values = [obl] + ([fwd] if self.tilt_check.isChecked() else [])
        for v in values:
            finite = v[np.isfinite(v)]
            if finite.size:
                peak = max(peak, float(np.max(np.abs(finite))) + 1.0)
        # Symmetric, in 5-degree steps, so "level" stays in the middle and the axis does not jitter.
        self._set_y_range(max(BASE_RANGE_DEG, 5.0 * math.ceil(peak / 5.0)))

    def _set_y_range(self, half_range: float) -> None:
        if half_range == self._y_range:
            return
        self._y_range = half_range
        item = self.plot.getPlotItem()
        item.setYRange(-half_range, half_range, padding=0)
        major = 5.0 if half_range <= 20 else 10.0 if half_range <= 45 else 30.0
        item.getAxis("left").setTickSpacing(major, major)

    def _set_text(self, label: QtWidgets.QLabel, text: str, style: str | None = None) -> None:
        # setText/setStyleSheet relayout the window: only call them on a change.
        key = id(label)
        if self._texts.get(key) != text:
            self._texts[key] = text
            label.setText(text)
        if style is not None and self._texts.get((key, "style")) != style:
            self._texts[(key, "style")] = style
            label.setStyleSheet(style)

    def _update_texts(self, st: LiveStatus) -> None:
        cue_on = st.cue_on and not st.ended     # an ended session sounds nothing, whatever came last
        if st.link in ("disconnected", "reconnecting") and not st.ended:
            # no live angle: say so where the angle was, never leave the last one standing as if live
            angle = ("Sensor connection lost: reconnecting…" if st.link == "disconnected"
                     else "Sensor connection lost: looking for the sensor…")
            style = f"color:{COLORS['bad_bg']}; font-size:22pt"
        elif st.link == "connecting" and not st.samples and not st.ended:
            angle = "Connecting to the sensor…"
            style = f"color:{COLORS['text']}; font-size:22pt"
        elif st.calibrating:
            # the calibration step the patient is asked for, large but smaller than an angle
            angle = st.message or "Stand still…"
            style = f"color:{COLORS['text']}; font-size:22pt"
        else:
            angle = describe_obliquity(st.obliquity_deg)
            style = f"color:{COLORS['cue'] if cue_on else COLORS['text']}"
        self._set_text(self.angle_label, angle, style)
        if st.exercise == "walk":
            self._set_text(self.exercise_label, f"Walking · cue when a step's swing side drops past "
                           f"{st.threshold_left_deg:g}° (left) / {st.threshold_right_deg:g}° (right)")
        else:
            self._set_text(self.exercise_label,
                           f"{st.exercise.replace('-', ' ').capitalize()} · standing on the {st.stance} leg · "
                           + (f"chime when the {st.free_side} hip reaches {st.free_threshold_deg:g}° down"
                              if st.exercise == "hip-dip" else
                              f"cue when the {st.free_side} hip drops past {st.free_threshold_deg:g}°"))
        self._set_text(self.reps_label, str(st.reps))
        self._set_text(self.last_rep_big, last_step_headline(st.last_step) if st.exercise == "walk"
                       else last_rep_headline(st.last_rep))

        if cue_on:
            cue_text = "♪ CUE (muted)" if self._muted else "♪ CUE"
            cue_style = f"background:{COLORS['cue']}; color:black; border-radius:10px; padding:8px 16px"
        else:
            cue_text = "cue muted" if self._muted else "cue off"
            cue_style = (f"color:{COLORS['muted_text']}; border:2px solid #dee2e6; border-radius:10px; "
                         "padding:6px 14px")
        self._set_text(self.cue_label, cue_text, cue_style)

        if st.exercise == "walk":
            self._show_event(self.rep_box, self.last_rep_label, st.last_step, "Last step", "No steps yet")
        else:
            self._show_event(self.rep_box, self.last_rep_label, st.last_rep, "Last rep", "No reps yet")
        if st.last_summary:
            self._show_event(self.set_box, self.last_set_label, st.last_summary,
                             "Last walk" if st.exercise == "walk" else "Last set", "")
            self.set_box.show()

        parts = [LINK_TEXT.get(st.link, st.link)]
        if st.calibrating:
            parts.append("Calibrating")  # the step itself is in the big text
        elif not st.calibrated:
            parts.append("Not calibrated yet")
        if st.message and not st.calibrating:
            parts.append(st.message)
        link_bad = st.link in ("disconnected", "reconnecting", "error")
        self._set_text(self.status_label, "  ·  ".join(parts),
                       f"color:{COLORS['bad_bg'] if link_bad else COLORS['text']}")
        self._update_loss(st)

    def _show_event(self, box: QtWidgets.QGroupBox, label: QtWidgets.QLabel, event: dict, title: str,
                    empty: str) -> None:
        rows = format_event(event)
        if self._texts.get((id(label), "event")) == rows:
            return
        self._texts[(id(label), "event")] = rows
        numbers = [f"{name} {event[key]}" for key, name in (("index", "no."), ("set", "set"))
                   if event.get(key) is not None]
        box.setTitle(title + (f" ({', '.join(numbers)})" if numbers else ""))
        label.setText(_rows_html(rows[:MAX_EVENT_ROWS]) if rows else empty)
        label.setToolTip(_rows_html(rows) if len(rows) > MAX_EVENT_ROWS else "")

    def _update_loss(self, st: LiveStatus) -> None:
        now = time.monotonic()
        hist = self._loss_history
        if not hist:
            hist.append((now, 0, 0))     # counts start at zero: the first window covers the whole run
        hist.append((now, st.lost_samples, st.samples))
        while len(hist) > 2 and hist[1][0] <= now - LOSS_WINDOW_S:
            hist.popleft()
        _, lost0, n0 = hist[0]
        lost, received = st.lost_samples - lost0, st.samples - n0
        if lost < 0 or received < 0:       # counters restarted (new stream): start the window again
            hist.clear()
            hist.append((now, st.lost_samples, st.samples))
            lost = received = 0
        rate = lost / (lost + received) if lost + received > 0 else 0.0
        self._loss_level = "bad" if rate >= LOSS_BAD else "warning" if rate >= LOSS_WARN else "ok"
        if st.lost_samples == 0:
            self.loss_label.hide()
            return
        text = f"Lost {st.lost_samples} samples ({100 * rate:.1f} % recently)"
        if self._loss_level == "bad":
            style = f"background:{COLORS['bad_bg']}; color:white; padding:3px 8px; border-radius:4px"
            text = "⚠ " + text + " – check the sensor connection"
        elif self._loss_level == "warning":
            style = f"background:{COLORS['warn_bg']}; color:black; padding:3px 8px; border-radius:4px"
        else:
            style = f"color:{COLORS['muted_text']}; padding:3px 8px"
        self._set_text(self.loss_label, text, style)
        self.loss_label.show()

    @property
    def loss_level(self) -> str:
        """'ok', 'warning' or 'bad': recent packet loss as the status line shows it."""
        return self._loss_level

    def _show_ended(self, st: LiveStatus) -> None:
        if self._ended_shown:
            return
        self._ended_shown = True
        parts = [f"Session ended – {st.reps} reps"]
        if st.link == "error" and st.message:  # why it ended early, in the sentence the runner gave
            parts = [f"Session ended: {st.message}", f"{st.reps} reps"]
        last_set = st.last_summary
        for key in ("worst_drop_deg", "average_drop_deg"):
            if last_set.get(key) is not None:
                parts.append(f"{event_label(key).lower()} {format_event_value(key, last_set[key])}")
        parts.append(f"{st.samples} samples" + (f", {st.lost_samples} lost" if st.lost_samples else ""))
        self._set_text(self.ended_banner, " · ".join(parts))
        self.ended_banner.show()
        for w in (*self.threshold_spins.values(), self.recalibrate_button, self.mute_check,
                  self.end_set_button, self.marker_button):
            if w is not None:
                w.setEnabled(False)
        # The last plot stays as drawn; nothing new will arrive, so stop spending CPU on redraws.
        self.timer.stop()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        # Only keys no widget took reach the window, so typing an M in the patient field stays a letter.
        if event.key() == QtCore.Qt.Key.Key_M and self.marker_button is not None:
            self._on_marker()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.timer.stop()
        self.closed.emit()
        super().closeEvent(event)


# ----------------------------------------------------------------------------------------------------
# application

def last_step_headline(step: dict) -> str:
    """Walking: the last step's drop in a few words for the big header."""
    if not step:
        return ""
    return f"last step: {step['swing_side']} side {float(step['drop_deg']):.1f}° down"


def last_rep_headline(rep: dict) -> str:
    """The last rep in a few words for the big header: its drop, and for a hip dip whether it came
    back to level."""
    if not rep or rep.get("max_drop_deg") is None:
        return ""
    text = f"last {float(rep['max_drop_deg']):.1f}°"
    if rep.get("returned_to_level") is False:
        text += " · not back"
    return text


def run_gui(live: LiveBuffer, start=None, stop=None, commands=None, title: str = "hiplevel",
            patients: list[str] | None = None, patient: str | None = None) -> int:
    """Show the live window until it is closed; return the event loop's exit code.

    `start()` runs once the event loop is running (it launches the pipeline thread); `stop()` runs once
    when the window closes (or Ctrl+C), before this returns. An exception from `start` closes the window
    and is raised again here, after `stop`, so the caller can report it in plain words. `patients` (known
    labels) and `patient` (the current one) add the patient field, for a recorded session.
    """
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0] if sys.argv else title])
    window = MainWindow(live, commands, patients=patients, patient=patient)
    window.setWindowTitle(title)
    errors: list[BaseException] = []

    def do_start():
        try:
            if start is not None:
                start()
        except BaseException as e:  # noqa: BLE001 - re-raised after the loop ends
            errors.append(e)
            window.close()

    window.closed.connect(app.quit)
    window.show()
    QtCore.QTimer.singleShot(0, do_start)

    # Ctrl+C in the terminal closes the window like the close button. Python only runs signal
    # handlers between bytecodes, so a slow timer keeps it waking even after the session ended.
    previous = None
    wake = QtCore.QTimer()
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: window.close())
        wake.timeout.connect(lambda: None)
        wake.start(200)
    try:
        code = app.exec()
    finally:
        # Nothing of this window may quit whatever event loop runs next in this process (a review
        # window, a test): no later close, and no Quit event still queued from this one.
        window.closed.disconnect(app.quit)
        QtCore.QCoreApplication.removePostedEvents(app, QtCore.QEvent.Type.Quit)
        wake.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        window.timer.stop()
        if stop is not None:
            stop()
    if errors:
        raise errors[0]
    return int(code)
