"""Runs the real patient view on whatever display Qt is given, for tests/gui/test_patient_view.py.

A real `ProgrammeRunner` (host.session.today) streams a simulated patient following a two-item
programme (firmware_sim.programme: the simulator's firmware encodes the frames; host.links.memory
hands them over on schedule, `--speed` times real time). When the view shows a hip dip rep with the
target cue on (or `--moment` says otherwise), the whole screen is grabbed to `--png` and `--json`
gets what the test needs to check the picture: where each text is on screen, its text, the cap
heights asked for, the screen size.
"""
from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile

from PySide6 import QtCore, QtWidgets

from firmware_sim.device import SimDevice
from firmware_sim.programme import ProgrammeScenario
from host.gui.patient_view import PatientView, show_full_screen
from host.links.memory import MemoryTransport
from host.session import programme as pg
from host.session.today import ProgrammeRunner

PROGRAMME = """
[[item]]
exercise = "hip-dip"
reps = 10
threshold_deg = 4
rest_s = 2

[[item]]
exercise = "single-leg-squat"
reps = 4
rest_s = 2
"""


def frames(steps, speed: float):
    sc = ProgrammeScenario(steps)
    dev = SimDevice(sc, seed=2)
    dev.streaming = True
    out = [(0.0, dev.info_frame())]
    t = 0.0
    while not dev.finished:
        t += 0.02
        out += [(t / speed, f) for f in dev.frames_due(t)]
    return out + [(t / speed, dev.stop_frame())]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--png", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--speed", type=float, default=4.0)
    ap.add_argument("--moment", choices=["target", "fault", "calibrating"], default="target")
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    programme = pg.from_toml(PROGRAMME)
    steps = pg.steps(programme)
    db = tempfile.mkdtemp() + "/s.sqlite"
    from host import store
    conn = store.connect(db, create=True)
    stored = pg.save(conn, "P-view", programme)
    run, _ = pg.next_run(conn, stored)
    conn.commit()
    conn.close()
    runner = ProgrammeRunner(MemoryTransport(frames(steps, args.speed)), steps, run, stored,
                             say=lambda *a, **k: None, db_path=db, pain_answers=queue.Queue())
    app = QtWidgets.QApplication(sys.argv[:1])
    view = PatientView(runner)
    show_full_screen(view)
    result = {"taken": False}

    def wanted(st, live) -> bool:
        if args.moment == "calibrating":
            return st.phase == "calibrating" and st.seconds_left > 0.3 and st.step == 0
        kind = "target" if args.moment == "target" else "fault"
        return st.phase == "exercise" and st.rep >= 1 and live.cue_on and st.cue_kind == kind

    def poll():
        st, live = runner.status_copy(), runner.live.status_copy()
        if not wanted(st, live):
            return
        view.refresh()
        app.processEvents()
        screen = app.primaryScreen()
        shot = screen.grabWindow(0)
        shot.save(args.png)

        def rect(w):
            r = w.rect()
            tl = w.mapToGlobal(r.topLeft())
            return [tl.x(), tl.y(), r.width(), r.height()]
        result.update(taken=True, screen_px=[shot.width(), shot.height()], cap_px=view.cap_px,
                      texts={k: getattr(view, k).text() for k in ("instruction", "rep", "timer", "cue_word")},
                      rects={k: rect(getattr(view, k)) for k in ("instruction", "rep", "timer", "cue_word",
                                                               "indicator")},
                      obliquity_deg=live.obliquity_deg, status=st.__dict__, platform=app.platformName(),
                      cue_word_style=view.cue_word.styleSheet())
        view.close()

    timer = QtCore.QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    QtCore.QTimer.singleShot(0, runner.start_in_thread)
    QtCore.QTimer.singleShot(int(args.timeout * 1000), view.close)
    view.closed.connect(app.quit)
    app.exec()
    runner.stop()
    with open(args.json, "w") as f:
        json.dump(result, f, default=str)
    return 0 if result["taken"] else 1


if __name__ == "__main__":
    sys.exit(main())
