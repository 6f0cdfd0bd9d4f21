"""The patient view of `hiplevel today`: full screen, readable from 3 m, one thing at a time.

In: a running `host.session.today.ProgrammeRunner` (read on a 30 Hz timer: its `status_copy()`
and its live buffer's angle and cue state; nothing here waits on the pipeline). Out: pain ratings
into the runner's `pain_answers` queue (buttons 0-10, keys 0-9, S to skip), and the therapist's
live window (host.gui.live_window.MainWindow, the same plot as `hiplevel run`) one key away: T.

What it shows: the current instruction in a few words; "Rep 3 of 10" (or the hold / rest / calibration
countdown); a big level indicator (the pelvis as a bar that tilts, drawn at 3x the real angle so a
5 degree limit is plain to see; a pale band for the allowed range; the low end coloured); and one
word about the cue, different for the two meanings the same threshold has: hip dip "Deep enough!"
(blue, a goal reached) vs single-leg squat / keep-level "Too low: lift your hip!" (red, a fault).
A failed calibration is said as what to do ("Bend forward a bit further"), never in degrees.

Letter heights (cap height, as a share of the screen height, so they scale with the screen):
instruction 7 %, rep count 9 %, cue word and timers 6 %. On a 13.3" 1280x800 laptop (4.45 px/mm) the
instruction's 56 px are 12.6 mm and the rep count's 72 px 16 mm: about three times the 4.4 mm a
letter needs at 3 m to subtend 5 arc-minutes (the acuity limit), the margin comfortable reading
wants; tests/gui/test_patient_view.py measures them on a screenshot.
"""
from __future__ import annotations

import math
import signal
import sys
import threading

from PySide6 import QtCore, QtGui, QtWidgets

# share of the screen height for each text's capital letters (see the module docstring)
CAP_SHARE = {"instruction": 0.07, "rep": 0.09, "cue": 0.06, "timer": 0.06}
VISUAL_GAIN = 3.0      # the bar tilts 3x the real angle
MAX_VISUAL_DEG = 40.0
PALETTE = {
    "background": "#10151c", "text": "#f8f9fa", "muted": "#adb5bd", "bar": "#e9ecef", "band": "#2b8a3e",
    "target": "#339af0",  # hip dip: the target depth reached (a goal)
    "fault": "#fa5252",   # squat / keep-level: past the limit (a fault)
    "low": "#fab005",     # the low end of the bar, neither goal nor fault yet
}
CUE_WORDS = {"target": "Deep enough!", "fault": "Too low: lift your hip!"}


def cap_font(cap_px: float, bold: bool = True) -> QtGui.QFont:
    """A font whose capital letters are `cap_px` pixels tall."""
    f = QtGui.QFont()
    f.setBold(bold)
    f.setPixelSize(100)
    ratio = QtGui.QFontMetricsF(f).capHeight() / 100.0 or 0.72
    f.setPixelSize(max(8, int(round(cap_px / ratio))))
    return f


class LevelIndicator(QtWidgets.QWidget):
    """The pelvis as a bar through a pivot, tilted by the obliquity (left side high = the bar's
    left end up), over a pale band for the allowed range (± each side's threshold)."""

    def __init__(self):
        super().__init__()
        self.obliquity_deg = 0.0
        self.threshold_left_deg = self.threshold_right_deg = 5.0
        self.free_side = "right"
        self.cue = ""                      # "" | "target" | "fault"
        self.setMinimumHeight(200)

    def set_state(self, obliquity_deg: float, threshold_left_deg: float, threshold_right_deg: float,
                  free_side: str, cue: str) -> None:
        self.obliquity_deg = obliquity_deg if math.isfinite(obliquity_deg) else 0.0
        self.threshold_left_deg, self.threshold_right_deg = threshold_left_deg, threshold_right_deg
        self.free_side, self.cue = free_side, cue
        self.update()

    def paintEvent(self, event):
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        cx, cy = w / 2, h / 2
        half = min(w * 0.38, h * 1.2)
        # the band: each end of the bar may move within its side's limits (a bow tie of two wedges)
        band = QtGui.QColor(PALETTE["band"])
        band.setAlpha(110)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(band)
        for sign, thr_low, thr_high in ((1, self.threshold_right_deg, self.threshold_left_deg),
                                        (-1, self.threshold_left_deg, self.threshold_right_deg)):
            # the right end goes down (screen y up) when the right hip drops: positive obliquity
            a_down = math.radians(min(MAX_VISUAL_DEG, thr_low * VISUAL_GAIN))
            a_up = math.radians(min(MAX_VISUAL_DEG, thr_high * VISUAL_GAIN))
            poly = QtGui.QPolygonF([QtCore.QPointF(cx, cy),
                                    QtCore.QPointF(cx + sign * half * math.cos(a_down), cy + half * math.sin(a_down)),
                                    QtCore.QPointF(cx + sign * half * math.cos(a_up), cy - half * math.sin(a_up))])
            p.drawPolygon(poly)
        # the bar: positive obliquity (left high) -> left end up, right end down
        a = math.radians(max(-MAX_VISUAL_DEG, min(MAX_VISUAL_DEG, self.obliquity_deg * VISUAL_GAIN)))
        dx, dy = half * math.cos(a), half * math.sin(a)
        left = QtCore.QPointF(cx - dx, cy - dy)
        right = QtCore.QPointF(cx + dx, cy + dy)
        thick = max(12.0, h * 0.09)
        pen = QtGui.QPen(QtGui.QColor(PALETTE["bar"]), thick)
        pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.drawLine(left, right)
        # the low end coloured: by the cue when it sounds, else amber once it is visibly low
        low_is_right = self.obliquity_deg > 0
        if abs(self.obliquity_deg) >= 1.0 or self.cue:
            colour = PALETTE[self.cue] if self.cue else PALETTE["low"]
            pen = QtGui.QPen(QtGui.QColor(colour), thick * 1.15)
            pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
            p.setPen(pen)
            tip = right if low_is_right else left
            mid = QtCore.QPointF(cx + (tip.x() - cx) * 0.55, cy + (tip.y() - cy) * 0.55)
            p.drawLine(mid, tip)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(PALETTE["muted"]))
        p.drawEllipse(QtCore.QPointF(cx, cy), thick * 0.7, thick * 0.7)
        p.end()


class PatientView(QtWidgets.QMainWindow):
    closed = QtCore.Signal()

    def __init__(self, runner, therapist_window=None):
        super().__init__()
        self.runner = runner
        self.live = runner.live
        self.setStyleSheet(f"background:{PALETTE['background']}; color:{PALETTE['text']}")
        self.stack = QtWidgets.QStackedWidget()
        self.setCentralWidget(self.stack)
        page = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(page)
        col.setContentsMargins(40, 20, 40, 20)
        self.instruction = self._label()
        self.rep = self._label()
        self.timer = self._label(muted=True)
        self.cue_word = self._label()
        self.indicator = LevelIndicator()
        col.addWidget(self.instruction)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.rep, 1)
        row.addWidget(self.timer, 1)
        col.addLayout(row)
        col.addWidget(self.indicator, 1)
        col.addWidget(self.cue_word)
        self.pain_row = QtWidgets.QWidget()
        pain = QtWidgets.QHBoxLayout(self.pain_row)
        self.pain_buttons = []
        for n in range(11):
            b = QtWidgets.QPushButton(str(n))
            b.setMinimumHeight(80)
            b.setStyleSheet(f"font-size:40px; background:#343a40; color:{PALETTE['text']}")
            b.clicked.connect(lambda _=False, n=n: self.answer_pain(n))
            pain.addWidget(b)
            self.pain_buttons.append(b)
        skip = QtWidgets.QPushButton("Skip")
        skip.setMinimumHeight(80)
        skip.setStyleSheet(f"font-size:40px; background:#343a40; color:{PALETTE['text']}")
        skip.clicked.connect(lambda: self.answer_pain(None))
        pain.addWidget(skip)
        col.addWidget(self.pain_row)
        hint = QtWidgets.QLabel("T: the therapist's plot   ·   Esc: end")
        hint.setStyleSheet(f"color:{PALETTE['muted']}; font-size:18px")
        col.addWidget(hint)
        self.stack.addWidget(page)
        self.therapist = therapist_window
        if therapist_window is not None:
            self.stack.addWidget(therapist_window)
        for key, fn in (("T", self.toggle_therapist), ("Escape", self.close), ("S", lambda: self.answer_pain(None))):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
            sc.activated.connect(fn)
        for n in range(10):
            sc = QtGui.QShortcut(QtGui.QKeySequence(str(n)), self)
            sc.activated.connect(lambda n=n: self.answer_pain(n))
        self._pain_open = False
        self.redraws = 0
        self.apply_sizes(QtWidgets.QApplication.primaryScreen().geometry().height())
        self.qtimer = QtCore.QTimer(self)
        self.qtimer.timeout.connect(self.refresh)
        self.qtimer.start(33)
        self.refresh()

    def _label(self, muted=False) -> QtWidgets.QLabel:
        lab = QtWidgets.QLabel()
        lab.setWordWrap(True)
        if muted:
            lab.setStyleSheet(f"color:{PALETTE['muted']}")
        return lab

    def apply_sizes(self, screen_h: int) -> None:
        self.cap_px = {k: v * screen_h for k, v in CAP_SHARE.items()}
        fixed = QtWidgets.QSizePolicy.Policy.Fixed
        for label, key, lines, bold in ((self.instruction, "instruction", 2, True), (self.rep, "rep", 1, True),
                                        (self.cue_word, "cue", 1, True), (self.timer, "timer", 1, False)):
            f = cap_font(self.cap_px[key], bold)
            label.setFont(f)
            label.setFixedHeight(int(QtGui.QFontMetrics(f).lineSpacing() * lines + 4))
            label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, fixed)
        self.rep.setWordWrap(False)
        self.timer.setWordWrap(False)
        self.cue_word.setWordWrap(False)
        self.instruction.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self.timer.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)

    def toggle_therapist(self) -> None:
        if self.therapist is not None:
            self.stack.setCurrentIndex(1 - self.stack.currentIndex())

    def answer_pain(self, n) -> None:
        if self._pain_open:
            self.runner.pain_answers.put(n)
            self._pain_open = False

    def refresh(self) -> None:
        st = self.runner.status_copy()
        live = self.live.status_copy()
        self.redraws += 1
        self.instruction.setText(st.instruction)
        if st.phase == "calibrating":
            self.rep.setText("Calibrating")
            self.timer.setText(f"{math.ceil(st.seconds_left)}" if st.seconds_left > 0 else "")
        elif st.phase == "exercise" and st.reps:
            self.rep.setText(f"Rep {st.rep} of {st.reps}")
            self.timer.setText("")
        elif st.phase == "exercise":
            self.rep.setText("Hold")
            self.timer.setText(f"{math.ceil(st.seconds_left)} s")
        elif st.phase in ("rest", "pain"):
            self.rep.setText("Rest" if st.phase == "rest" else "Pain?")
            self.timer.setText(f"{math.ceil(st.seconds_left)} s" if st.seconds_left > 0 else "")
        else:
            self.rep.setText("")
            self.timer.setText("")
        self._pain_open = st.phase == "pain" or (self._pain_open and st.phase != "done")
        self.pain_row.setVisible(st.phase == "pain")
        cue = st.cue_kind if (live.cue_on and st.phase == "exercise") else ""
        self.cue_word.setText(CUE_WORDS.get(cue, ""))
        self.cue_word.setStyleSheet(f"color:{PALETTE[cue]}" if cue else "")
        free = "right" if st.stance == "left" else "left"
        self.indicator.set_state(live.obliquity_deg, live.threshold_left_deg, live.threshold_right_deg, free, cue)

    def closeEvent(self, event):
        self.qtimer.stop()
        self.closed.emit()
        super().closeEvent(event)


def show_full_screen(view) -> None:
    """Full screen; the geometry is also set, because without a window manager (a kiosk, Xvfb) the
    full-screen state alone does not resize the window."""
    view.setGeometry(view.screen().geometry())
    view.showFullScreen()


def run_patient_view(runner, title: str = "hiplevel", full_screen: bool = True) -> int:
    """Show the patient view (full screen) while the runner streams on its own thread; returns when
    the programme is done (the view stays a few seconds to say so) or the window is closed."""
    from host.gui.live_window import MainWindow
    from host.session.live_app import SessionControls
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0] if sys.argv else title])
    therapist = MainWindow(runner.live, SessionControls(runner, None))
    view = PatientView(runner, therapist)
    view.setWindowTitle(title)
    thread = None

    def start():
        nonlocal thread
        thread = runner.start_in_thread()

    def check_done():
        if thread is not None and not thread.is_alive():
            QtCore.QTimer.singleShot(3000, view.close)
            watch.stop()

    view.closed.connect(app.quit)
    if full_screen:
        show_full_screen(view)
    else:
        view.show()
    QtCore.QTimer.singleShot(0, start)
    watch = QtCore.QTimer()
    watch.timeout.connect(check_done)
    watch.start(200)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: view.close())
    try:
        code = app.exec()
    finally:
        view.closed.disconnect(app.quit)
        watch.stop()
        therapist.timer.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        runner.stop()
        if thread is not None:
            thread.join(timeout=5)
    return int(code)
