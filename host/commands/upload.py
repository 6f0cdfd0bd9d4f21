"""Upload this installation's finished sessions to the clinic it is paired with (`hiplevel upload`).

In: the local session store (--db) and the pairing (`hiplevel pair`). Out: each session the
clinic has not confirmed yet, sent in checked chunks (host.sinks.clinic_link); one line per
session, and exit status 1 when any stays behind (it is sent on the next try).
"""
from __future__ import annotations

import argparse

from host import store
from host.commands.db_args import add_db_argument
from host.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_db_argument(p)
    p.add_argument("--session", type=int, action="append", metavar="ID",
                   help="only this session (again to add more; default: every one not uploaded yet)")


def run(args) -> int:
    from host.sinks import clinic_link as cl
    try:
        pairing = cl.load_pairing()
    except cl.ClinicError as e:
        raise UserError(str(e)) from None
    if pairing is None:
        raise UserError("this installation is not paired with a clinic; run `hiplevel pair URL CODE` first")
    db = args.db or store.default_db_path()
    try:
        sent, left = cl.upload_pending(db, cl.ClinicLink(pairing), print, args.session)
    except store.StoreError as e:
        raise UserError(str(e)) from None
    except store.DB_ERRORS as e:
        raise UserError(store.explain(e, db)) from None
    if sent == left == 0:
        print(f"Nothing to upload: every finished session of {pairing.patient} is at the clinic.")
    return 1 if left else 0
