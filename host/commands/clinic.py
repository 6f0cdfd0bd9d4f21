"""Clinics for the web dashboard (`hiplevel clinic add-therapist | assign-patient | list`).

In: the session database (--db, as every command; host.store), a clinic name, a therapist's user
name and a password (asked twice on a terminal; one line on stdin with --password-stdin), or a
patient label. Out: the therapist account (argon2 hash only, host.server.auth) or the patient put
under the clinic, and one line saying what was done. `hiplevel serve` signs these therapists in.
"""
from __future__ import annotations

import argparse
import getpass
import sys

from host import store
from host.commands.db_args import add_db_argument, plain_db_errors
from host.errors import UserError
from host.sinks.recorder import patient_label


def clinic_name(text: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= 80 or not text.isprintable():
        raise argparse.ArgumentTypeError("a clinic name has 1 to 80 printable characters")
    return text


def user_name(text: str) -> str:
    from host.server.auth import check_username
    try:
        return check_username(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add-therapist", help="add a therapist account (or set a known one's password)")
    a.add_argument("clinic", type=clinic_name, metavar="CLINIC", help="the clinic (made if new)")
    a.add_argument("username", type=user_name, metavar="USER")
    a.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    add_db_argument(a)
    b = sub.add_parser("assign-patient", help="put a patient under a clinic (its therapists see them)")
    b.add_argument("clinic", type=clinic_name, metavar="CLINIC")
    b.add_argument("patient", type=patient_label, metavar="LABEL")
    add_db_argument(b)
    c = sub.add_parser("list", help="the clinics, with their therapists and patients counted")
    add_db_argument(c)


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("the two passwords differ; nothing was changed")
    return password


@plain_db_errors
def run(args) -> int:
    from host.server import auth
    try:
        conn = store.connect(args.db or store.default_db_path(), create=True)
    except store.StoreError as e:
        raise UserError(str(e)) from None
    try:
        if args.action == "add-therapist":
            try:
                hashed = auth.hash_password(read_password(args.password_stdin))
            except ValueError as e:
                raise UserError(str(e)) from None
            with transaction(conn):
                new = store.set_therapist(conn, args.clinic, args.username, hashed)
            t = store.therapist(conn, username=args.username)
            print(f"Therapist {args.username} {'added to' if new else 'has a new password in'} {t.clinic}"
                  + ("" if new or t.clinic == args.clinic else f" (the account stays in {t.clinic})") + ".")
        elif args.action == "assign-patient":
            try:
                with transaction(conn):
                    store.assign_patient(conn, args.patient, args.clinic)
            except store.StoreError as e:
                raise UserError(str(e)) from None
            print(f"Patient {args.patient} is now seen by {args.clinic}.")
        else:
            clinics = store.list_clinics(conn)
            for c in clinics:
                print(f"{c['name']}: {c['therapists']} therapist(s), {c['patients']} patient(s)")
            if not clinics:
                print("No clinics yet (`hiplevel clinic add-therapist CLINIC USER`).")
    finally:
        conn.close()
    return 0


transaction = store.transaction  # BEGIN ... COMMIT, or ROLLBACK on an error
