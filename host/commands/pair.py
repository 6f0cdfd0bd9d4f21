"""Pair this home installation with the clinic (`hiplevel pair URL CODE`), once.

In: the clinic's dashboard address and the one-time code a therapist made on the patient's page
(asked for when not given). Out: the pairing file (host.sinks.clinic_link.pairing_path), and one
sentence naming the patient and clinic. Afterwards `run` and `today` upload each finished session
by themselves, `today` fetches the patient's programme, and `hiplevel upload` sends what is left.
"""
from __future__ import annotations

import argparse
import socket
import sys

from host.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="URL", help="the clinic's dashboard, e.g. https://clinic.example.org")
    p.add_argument("code", metavar="CODE", nargs="?", help="the one-time code from the dashboard (asked if missing)")
    p.add_argument("--name", default=None, help="what the clinic sees this installation as (default: this "
                   "computer's name)")


def run(args) -> int:
    from host.sinks import clinic_link as cl
    code = args.code
    if code is None:
        if not sys.stdin.isatty():
            raise UserError("give the code from the clinic's dashboard: hiplevel pair URL CODE")
        code = input("Code from the clinic: ")
    try:
        old = cl.load_pairing()
    except cl.ClinicError:
        old = None
    try:
        p = cl.pair(args.url, code, (args.name or socket.gethostname() or "home installation")[:60])
    except cl.ClinicError as e:
        raise UserError(f"not paired: {e}") from None
    print(f"Paired with {p.clinic or 'the clinic'} at {p.url} for patient {p.patient}"
          + (f" (replacing the pairing with {old.url})" if old and old.url != p.url else "") + ". "
          f"Finished sessions now upload by themselves; `hiplevel today --patient {p.patient}` "
          "fetches the programme.")
    return 0
