"""The history window (`hiplevel history [--db PATH] [--patient LABEL]`): pick a patient, see their
sessions and their progress over weeks, open a session to review it with a time slider.

In: the session database (host.store; `--db PATH`, else the default in the user's data folder).
Out: the window (host.gui.history_window); nothing is written. Without a display it says so in one sentence
and names the commands that give the same information as text and HTML.
"""
from __future__ import annotations

import argparse

from host import store
from host.errors import UserError
from host.commands.db_args import add_patient_filter, patient_db, plain_db_errors


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_patient_filter(p, "show this patient first (default: the patient of the latest session)")


@plain_db_errors
def run(args) -> int:
    # The database first: a wrong path or an unknown patient is worth saying with or without a display.
    with patient_db(args):
        pass
    try:
        from host.gui.display import qt_display_available
        display = qt_display_available()
        reason = "no display was found"
    except ImportError as e:  # Qt's libraries missing
        display, reason = False, f"Qt cannot be loaded ({e})"
    if not display:
        who = f" --patient {args.patient}" if args.patient else " [--patient LABEL]"
        raise UserError(f"the history window cannot open: {reason}. The same information as text: "
                        f"`hiplevel sessions{who}`; as an HTML page: `hiplevel report --patient LABEL` "
                        "(progress) or `hiplevel report SESSION` (one session).")
    from host.gui.history_window import run_history
    return run_history(args.db or store.default_db_path(), args.patient)
