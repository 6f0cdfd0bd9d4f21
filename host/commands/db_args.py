"""What the commands that read the session store share: the --db and --patient options, opening
the database for reading, picking a session and its blocks, and database errors in plain words.
Not a subcommand; every function raises UserError with a sentence the user can act on.
"""
from __future__ import annotations

import argparse
import contextlib
import functools

from host import store
from host.errors import UserError
from host.sinks.recorder import patient_label


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH|URL", help=store.DB_HELP)


def plain_db_errors(run):
    """A command's run(): a database error while reading (damaged file, disk error) becomes one
    plain sentence instead of a traceback."""
    @functools.wraps(run)
    def wrapper(args):
        try:
            return run(args)
        except store.DB_ERRORS as e:
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


def add_patient_filter(p: argparse.ArgumentParser, help_text: str) -> None:
    """--patient LABEL and --db PATH, for the commands that show one patient's sessions."""
    p.add_argument("--patient", type=patient_label, metavar="LABEL", help=help_text)
    add_db_argument(p)


@contextlib.contextmanager
def patient_db(args):
    """The database for reading with --patient checked (a UserError naming the known patients when
    it is not there); closed on leaving the block."""
    conn = open_db(args)
    try:
        require_patient(conn, args.patient)
        yield conn
    finally:
        conn.close()
