"""List recorded sessions (`hiplevel sessions [--patient LABEL]`).

In: the session database (host.store; `--db PATH`, else the default in the user's data folder).
Out: one line per session, oldest first: number, date, patient, exercise, stance, length, reps,
cued reps and whether it ended normally. The number is what `replay`, `export` and `report` take.
Also holds the helpers the other session commands share (the --db option, opening for reading).
"""
from __future__ import annotations

import argparse
import functools
import sqlite3

from host import store
from host.cli import UserError
from host.sinks.recorder import patient_label


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help="session database (default: sessions.sqlite in the user's "
                   "data folder, or $HIPLEVEL_DB)")


def plain_db_errors(run):
    """A command's run(): a database error while reading (damaged file, disk error) becomes one
    plain sentence instead of a traceback."""
    @functools.wraps(run)
    def wrapper(args):
        try:
            return run(args)
        except sqlite3.Error as e:
            raise UserError(store.explain(e, args.db or store.default_db_path())) from None
    return wrapper


def require_patient(conn, label: str | None) -> None:
    """A UserError naming the known patients when `label` is given but not in the database."""
    if label is not None and store.patient_id(conn, label, create=False) is None:
        known = store.list_patients(conn)
        raise UserError(f"no patient {label!r} in the database"
                        + (f" (known: {', '.join(known[:20])})" if known else ""))


def open_db(args):
    """The database for reading, or a UserError in plain words."""
    path = args.db or store.default_db_path()
    try:
        return store.connect(path, create=False)
    except store.StoreError as e:
        raise UserError(str(e)) from None


def session_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", metavar="SESSION", help="session number (see `hiplevel sessions`), or 'last'")


def get_session(conn, ref):
    try:
        return store.get_session(conn, ref)
    except store.StoreError as e:
        raise UserError(str(e)) from None


def pick_blocks(session, number: int | None):
    if number is None:
        if not session.blocks:
            raise UserError(f"session {session.id} holds no blocks")
        return session.blocks
    chosen = [s for s in session.blocks if s.number == number]
    if not chosen:
        raise UserError(f"session {session.id} has no block {number} (it has "
                        f"{', '.join(str(s.number) for s in session.blocks) or 'none'})")
    return chosen


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe_block(s: store.BlockInfo) -> str:
    return (f"{s.exercise}, standing on the {s.stance} leg, thresholds left {s.threshold_left_deg:g}° / "
            f"right {s.threshold_right_deg:g}°, {s.estimator}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", type=patient_label, metavar="LABEL", help="only this patient's sessions")
    add_db_argument(p)


@plain_db_errors
def run(args) -> int:
    conn = open_db(args)
    try:
        require_patient(conn, args.patient)
        sessions = store.list_sessions(conn, args.patient)
    finally:
        conn.close()
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
