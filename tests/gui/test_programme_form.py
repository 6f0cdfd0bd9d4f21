"""The history window's programme form, drawn offscreen through pytest-qt on a real SQLite file:
a therapist fills it in, a mistake is refused in words with nothing written, and a save is a new
version that `hiplevel programme` reads back."""
from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from PySide6 import QtCore  # noqa: E402

from host import store  # noqa: E402
from host.gui.history_window import HistoryWindow  # noqa: E402
from host.gui.programme_form import COLUMNS  # noqa: E402
from host.session import programme as pg  # noqa: E402


def set_cell(form, row, key, text):
    c = COLUMNS.index(key)
    w = form.table.cellWidget(row, c)
    if w is not None:
        w.setCurrentText(text)
    else:
        form.table.item(row, c).setText(text)


def test_the_form_prescribes_a_new_version(qtbot, tmp_path):
    db = tmp_path / "f.sqlite"
    conn = store.connect(db, create=True)
    pg.save(conn, "P-5", pg.from_toml('[[item]]\nexercise = "hip-dip"\nstance = "left"\nreps = 8\n'))
    conn.commit()
    conn.close()
    w = HistoryWindow(db, "P-5")
    qtbot.addWidget(w)
    form = w.open_programme()
    qtbot.addWidget(form)
    assert form.version_label.text().startswith("Version 1") and form.table.rowCount() == 1
    assert form.table.item(0, COLUMNS.index("reps")).text() == "8"

    set_cell(form, 0, "reps", "eight")  # a mistake: said in one sentence, nothing stored
    qtbot.mouseClick(form.save_button, QtCore.Qt.MouseButton.LeftButton)
    assert form.message.text() == "Not saved: item 1 (hip-dip): reps must be a whole number, not 'eight'."
    conn = store.connect(db)
    assert [v for v, _ in pg.versions(conn, "P-5")] == [1]
    conn.close()

    set_cell(form, 0, "reps", "12")
    set_cell(form, 0, "stance", "both")
    qtbot.mouseClick(form.add_button, QtCore.Qt.MouseButton.LeftButton)
    set_cell(form, 1, "exercise", "keep-level")
    set_cell(form, 1, "reps", "0")
    set_cell(form, 1, "hold_s", "30")
    set_cell(form, 1, "feedback", "bandwidth")
    form.per_week.setValue(4)
    form.notes.setText("Slowly.")
    qtbot.mouseClick(form.save_button, QtCore.Qt.MouseButton.LeftButton)
    assert form.message.text().startswith("Saved as version 2.")
    conn = store.connect(db)
    p = pg.load(conn, "P-5").programme
    conn.close()
    assert (p.sessions_per_week, p.notes) == (4, "Slowly.")
    assert [(i.exercise, i.stance, i.reps, i.hold_s, i.feedback) for i in p.items] == [
        ("hip-dip", "both", 12, 0.0, "every-rep"), ("keep-level", "left", 0, 30.0, "bandwidth")]

    form.table.selectRow(1)
    qtbot.mouseClick(form.remove_button, QtCore.Qt.MouseButton.LeftButton)
    assert form.table.rowCount() == 1 and form.to_dict()["item"][0]["exercise"] == "hip-dip"
