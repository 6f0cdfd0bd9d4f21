"""The programme form of the history window: the therapist prescribes a patient's programme there
as `hiplevel programme edit` does on the command line.

In: the session database and a patient label; the patient's latest programme (host.session.programme)
fills the form, one row per item and one column per item field (exercise, stance and feedback as
lists, the rest as text), with sessions per week and the notes for the patient above it.
Out: "Save as new version" turns the form into a dict, validates it with `programme.from_dict`
(the same rules and the same one-sentence mistakes as a TOML file) and stores it as the patient's
next version; a mistake is shown under the form and nothing is written.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from PySide6 import QtWidgets

from host import store
from host.gui.qt_common import font
from host.processing.exercise import EXERCISES
from host.session import programme as pg

COLUMNS = [f.name for f in fields(pg.Item)]
CHOICES = {"exercise": list(EXERCISES), "stance": ["left", "right", "both"], "feedback": list(pg.FEEDBACK_MODES)}


class ProgrammeForm(QtWidgets.QDialog):
    def __init__(self, db_path, patient: str, parent=None):
        super().__init__(parent)
        self.db_path, self.patient = db_path, patient
        self.saved: pg.StoredProgramme | None = None
        self.setWindowTitle(f"hiplevel — programme of {patient}")
        self.resize(1300, 520)
        col = QtWidgets.QVBoxLayout(self)
        self.version_label = QtWidgets.QLabel()
        self.version_label.setFont(font(14, bold=True))
        col.addWidget(self.version_label)
        top = QtWidgets.QFormLayout()
        self.per_week = QtWidgets.QSpinBox()
        self.per_week.setRange(1, 21)
        top.addRow("Sessions a week", self.per_week)
        self.notes = QtWidgets.QLineEdit()
        top.addRow("Notes for the patient", self.notes)
        col.addLayout(top)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.replace("_", " ") for c in COLUMNS])
        col.addWidget(self.table, stretch=1)
        buttons = QtWidgets.QHBoxLayout()
        self.add_button = QtWidgets.QPushButton("Add item")
        self.add_button.clicked.connect(lambda: self.add_row(pg.Item()))
        self.remove_button = QtWidgets.QPushButton("Remove selected item")
        self.remove_button.clicked.connect(self.remove_selected)
        self.save_button = QtWidgets.QPushButton("Save as new version")
        self.save_button.clicked.connect(self.save)
        for b in (self.add_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        col.addLayout(buttons)
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        self.message.setFont(font(12))
        col.addWidget(self.message)
        self.load()

    def load(self) -> None:
        conn = store.connect(self.db_path)
        try:
            stored = pg.load(conn, self.patient)
        finally:
            conn.close()
        p = stored.programme if stored else pg.Programme(items=[pg.Item()])
        self.version_label.setText(f"Version {stored.version} ({store.local_time(stored.created_utc)})"
                                   if stored else "No programme yet: this is a first version to fill in.")
        self.per_week.setValue(p.sessions_per_week)
        self.notes.setText(p.notes)
        self.table.setRowCount(0)
        for item in p.items:
            self.add_row(item)

    def add_row(self, item: pg.Item) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for c, (key, value) in enumerate(asdict(item).items()):
            if key in CHOICES:
                box = QtWidgets.QComboBox()
                box.addItems(CHOICES[key])
                box.setCurrentText(str(value))
                self.table.setCellWidget(row, c, box)
            else:
                self.table.setItem(row, c, QtWidgets.QTableWidgetItem(f"{value:g}" if isinstance(value, float)
                                                                      else str(value)))

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows or [self.table.currentRow()]:
            if r >= 0:
                self.table.removeRow(r)

    def to_dict(self) -> dict:
        items = []
        for r in range(self.table.rowCount()):
            d = {}
            for c, key in enumerate(COLUMNS):
                w = self.table.cellWidget(r, c)
                d[key] = w.currentText() if w is not None else pg.value_of_text(self.table.item(r, c).text())
                if key == "notes":
                    d[key] = str(d[key])  # notes are text even when they look like a number
            items.append(d)
        return {"sessions_per_week": self.per_week.value(), "notes": self.notes.text(), "item": items}

    def save(self) -> pg.StoredProgramme | None:
        try:
            p = pg.from_dict(self.to_dict())
        except pg.ProgrammeError as e:
            self.message.setText(f"Not saved: {e}.")
            return None
        try:
            conn = store.connect(self.db_path)
            try:
                self.saved = pg.save(conn, self.patient, p)
                conn.commit()
            finally:
                conn.close()
        except (*store.DB_ERRORS, store.StoreError) as e:
            self.message.setText("Not saved: " + (str(e) if isinstance(e, store.StoreError)
                                                  else store.explain(e, self.db_path)))
            return None
        self.message.setText(f"Saved as version {self.saved.version}. " + pg.describe(p, self.saved.version))
        self.version_label.setText(f"Version {self.saved.version} ({store.local_time(self.saved.created_utc)})")
        return self.saved
