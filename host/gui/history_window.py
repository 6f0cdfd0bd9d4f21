"""The history window: a patient's recorded sessions and their progress over weeks
(`hiplevel history`, see host.commands.history); a session opens in host.gui.review_window.

In: the session database (host.store). Lists, counts and the progress chart come from small queries
on the GUI thread (patients, sessions, the indexed rep columns via `store.progress`).
Out: widgets only; the one write is the programme form's (host.gui.programme_form, "Programme…"),
which stores a new programme version.
"""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from host import store
from host.gui.programme_form import ProgrammeForm
from host.gui.qt_common import COLORS, font, section, window_frame
from host.gui.review_model import date_labels, drops_text, exercise_name, merge_sides
from host.gui.review_window import REPS_BAR, SIDE_STYLE, ReviewWindow

log = logging.getLogger(__name__)

SESSION_COLUMNS = ["session", "date", "exercise", "stance", "reps", "with the cue", "worst drop", "average drop",
                   "status"]


class HistoryWindow(QtWidgets.QMainWindow):
    """A patient picker, the patient's sessions, and their progress (drop per side, cued reps)."""

    def __init__(self, db_path, patient: str | None = None, parent=None):
        super().__init__(parent)
        self.db_path = store.db_target(db_path)
        store.connect(self.db_path).close()   # a missing or foreign file fails here, in words (StoreError)
        self.sessions: list[store.SessionInfo] = []
        self.progress_rows: list[dict] = []
        self.reviews: list[ReviewWindow] = []
        root = window_frame(self, f"hiplevel — history ({store.shown(self.db_path)})", 1320, 900)

        top = QtWidgets.QHBoxLayout()
        caption = QtWidgets.QLabel("Patient")
        caption.setFont(font(16, bold=True))
        top.addWidget(caption)
        self.patient_combo = QtWidgets.QComboBox()
        self.patient_combo.setFont(font(16))
        self.patient_combo.setMinimumWidth(260)
        self.patient_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        top.addWidget(self.patient_combo)
        top.addSpacing(20)
        self.summary_label = QtWidgets.QLabel()
        self.summary_label.setFont(font(13))
        top.addWidget(self.summary_label, stretch=1)
        self.programme_button = QtWidgets.QPushButton("Programme…")
        self.programme_button.setFont(font(12))
        self.programme_button.setToolTip("Prescribe this patient's programme (hiplevel today runs it)")
        self.programme_button.clicked.connect(self.open_programme)
        top.addWidget(self.programme_button)
        self.reload_button = QtWidgets.QPushButton("↻ Reload")
        self.reload_button.setFont(font(12))
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
        self.status_label.setFont(font(12))
        root.addWidget(self.status_label)

        self.patient_combo.currentTextChanged.connect(self.show_patient)
        self.reload(patient)

    # -- construction ------------------------------------------------------------------------------

    def _build_table(self) -> QtWidgets.QWidget:
        box, col, head = section("Sessions — double-click one (or select it and press Open) to review it", stretch=1)
        self.open_button = QtWidgets.QPushButton("Open session")
        self.open_button.setFont(font(12))
        self.open_button.clicked.connect(self.open_selected)
        head.addWidget(self.open_button)
        col.addLayout(head)
        self.table = QtWidgets.QTableWidget(0, len(SESSION_COLUMNS))
        self.table.setHorizontalHeaderLabels(SESSION_COLUMNS)
        self.table.setFont(font(12))
        self.table.horizontalHeader().setFont(font(12, bold=True))
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
        box, col, head = section("Progress")
        self.exercise_combo = QtWidgets.QComboBox()
        self.exercise_combo.setFont(font(12))
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
                axis.setStyle(tickFont=font(11))
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
        self.progress_legend.setFont(font(11))
        self.progress_legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        col.addWidget(self.progress_legend)
        col.addWidget(self.drop_plot, stretch=3)
        self.reps_caption = QtWidgets.QLabel(
            f'Reps per session: <span style="color:{COLORS["cue"]}; font-weight:bold">███</span> with the cue, '
            f'<span style="color:{REPS_BAR}; font-weight:bold">███</span> without')
        self.reps_caption.setFont(font(11))
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
        except (*store.DB_ERRORS, store.StoreError) as e:
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
        status = f"Database: {store.shown(self.db_path)}"
        try:
            with self._db() as conn:
                self.sessions = store.list_sessions(conn, patient) if patient else []
                self.progress_rows = store.progress(conn, patient) if patient else []
        except (*store.DB_ERRORS, store.StoreError) as e:
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
            lab.setFont(font(10))
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

    def open_programme(self) -> ProgrammeForm | None:
        """The programme form of the patient shown (a new version on save)."""
        patient = self.patient_combo.currentText()
        if not patient:
            self.status_label.setText("Choose a patient first: a programme belongs to one patient.")
            return None
        form = ProgrammeForm(self.db_path, patient, self)
        self.programme_form = form
        form.show()
        return form

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
