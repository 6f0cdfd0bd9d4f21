"""List recorded sessions (`hiplevel sessions [--patient LABEL]`).

In: the session database (host.store; `--db PATH`, else the default in the user's data folder).
Out: one line per session, oldest first: number, date, patient, exercise, stance, length, reps,
cued reps and whether it ended normally. The number is what `replay`, `export` and `report` take.
"""
from __future__ import annotations

import argparse

from host import store
from host.commands.db_args import add_patient_filter, patient_db, plain_db_errors
from host.report.text import fmt_duration


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_patient_filter(p, "only this patient's sessions")


@plain_db_errors
def run(args) -> int:
    with patient_db(args) as conn:
        sessions = store.list_sessions(conn, args.patient)
    if not sessions:
        print("No sessions recorded yet.")
        return 0
    rows = [("session", "date", "patient", "exercise", "stance", "length", "reps", "cued", "status")]
    for s in sessions:
        rows.append((str(s.id), store.local_time(s.started_utc), s.patient,
                     ",".join(sorted({t.exercise for t in s.blocks})) or "-",
                     ",".join(sorted({t.stance for t in s.blocks})) or "-",
                     fmt_duration(s.duration_s), str(s.reps), str(s.cued_reps), s.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i < len(r) - 1 else c for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0
