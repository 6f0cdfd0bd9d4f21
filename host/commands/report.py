"""HTML reports (`hiplevel report SESSION`, `hiplevel report --patient LABEL`).

In: the session store (host.store). Out: one self-contained HTML file, made by host.report.html
(what the page holds is described there), written where --output says or into this folder.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from host import store
from host.commands.db_args import add_db_argument, get_session, open_db, plain_db_errors
from host.errors import UserError
from host.report.html import patient_report, session_report
from host.session import programme
from host.sinks.recorder import patient_label


def add_arguments(p) -> None:
    p.add_argument("session", metavar="SESSION", nargs="?",
                   help="session number (see `hiplevel sessions`), or 'last'")
    p.add_argument("--patient", type=patient_label, metavar="LABEL",
                   help="instead of one session: the patient's progress across sessions")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the HTML (default: in this folder)")
    add_db_argument(p)


@plain_db_errors
def run(args) -> int:
    if (args.session is None) == (args.patient is None):
        raise UserError("give a session number, or --patient LABEL for a patient's progress (one of the two)")
    conn = open_db(args)
    try:
        if args.patient is not None:
            try:
                rows = store.progress(conn, args.patient)
            except store.StoreError as e:
                raise UserError(str(e)) from None
            page = patient_report(args.patient, rows, programme.adherence(conn, args.patient))
            default = f"patient-{_safe_name(args.patient)}-progress.html"
        else:
            session = get_session(conn, args.session)
            page = session_report(conn, session)
            default = f"session-{session.id}-report.html"
    finally:
        conn.close()
    out = Path(args.output or default)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report {out}: {e.strerror}") from None
    print(out)
    return 0




def _safe_name(label: str) -> str:
    """A file name part for a patient label. A label that had to be changed to be safe ("..",
    "/", "P 1") gets a short digest of the label itself, so two labels never share a report file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")
    if safe == label:
        return safe
    digest = hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else digest
