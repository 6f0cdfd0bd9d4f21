"""A patient's programme for the therapist (`hiplevel programme show|edit|import|export`).

`show` prints the programme in plain words; `import FILE` stores a TOML file (the one a therapist
mails) as the patient's next version; `export [FILE]` writes it as TOML; `edit` opens $EDITOR on the
TOML, or changes it from the command line (`--item 2 --set reps=12 --set threshold_deg=6`, `--add
EXERCISE`, `--remove N`). Every change is a new version (host.session.programme); the sessions that
followed an older one keep saying which. Argument parsing and wiring only.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import asdict
from pathlib import Path

from host import store
from host.commands.db_args import add_db_argument, plain_db_errors
from host.errors import UserError
from host.processing.exercise import EXERCISES
from host.session import programme as pg
from host.sinks.recorder import patient_label


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("show", "the programme in plain words"),
                       ("edit", "change the programme ($EDITOR, or --set/--add/--remove)"),
                       ("import", "store a programme file (TOML) as the next version"),
                       ("export", "write the programme as a TOML file")):
        a = sub.add_parser(name, help=text, description=text)
        a.add_argument("--patient", type=patient_label, required=True, metavar="LABEL")
        add_db_argument(a)
        if name == "import":
            a.add_argument("file", metavar="FILE", help="the programme file (TOML; '-' = standard input)")
        if name in ("show", "export"):
            a.add_argument("--version", type=int, default=None, metavar="N", help="an earlier version")
        if name == "export":
            a.add_argument("file", metavar="FILE", nargs="?", default="-", help="where to write (default: stdout)")
        if name == "edit":
            a.add_argument("--item", type=int, default=None, metavar="N",
                           help="the item --set changes (default: the only one; 1 = the first)")
            a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="set one key of the item, e.g. reps=12, stance=both, threshold_deg=6, "
                                "feedback=faded; or of the programme: sessions_per_week=4 (repeatable)")
            a.add_argument("--add", choices=EXERCISES, action="append", default=[], metavar="EXERCISE",
                           help=f"append an item of this exercise ({', '.join(EXERCISES)})")
            a.add_argument("--remove", type=int, default=None, metavar="N", help="remove item N")


@plain_db_errors
def run(args) -> int:
    path = args.db or store.default_db_path()
    try:
        conn = store.connect(path, create=args.action in ("edit", "import"))
    except store.StoreError as e:
        raise UserError(str(e)) from None
    try:
        return ACTIONS[args.action](conn, args)
    finally:
        conn.close()


def _stored(conn, args, required=True):
    version = getattr(args, "version", None)
    try:
        s = pg.load(conn, args.patient, version)
    except pg.ProgrammeError as e:  # a stored text this version cannot read
        raise UserError(f"the stored programme cannot be read: {e}") from None
    if s is None and required:
        if version is not None and pg.versions(conn, args.patient):
            raise UserError(f"patient {args.patient} has no programme version {version} (versions: "
                            f"{', '.join(str(v) for v, _ in pg.versions(conn, args.patient))})")
        raise UserError(f"patient {args.patient} has no programme yet; make one with `hiplevel programme "
                        f"edit --patient {args.patient}` or `hiplevel programme import FILE --patient "
                        f"{args.patient}`")
    return s


def _save(conn, args, p: pg.Programme) -> int:
    s = pg.save(conn, args.patient, p)
    conn.commit()
    print(f"Saved as version {s.version} of {args.patient}'s programme.")
    print(pg.describe(s.programme, s.version))
    return 0


def show(conn, args) -> int:
    s = _stored(conn, args)
    print(f"Patient {args.patient}, saved {store.local_time(s.created_utc)}.")
    runs = [r for r in pg.runs(conn, args.patient) if r.completed_utc]
    print(pg.describe(s.programme, s.version, session_number=len(runs) + 1))
    return 0


def export(conn, args) -> int:
    s = _stored(conn, args)
    text = pg.to_toml(s.programme, header=f"programme of {args.patient}, version {s.version}")
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.file).write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {args.file}: {e.strerror}") from None
    print(f"Wrote version {s.version} of {args.patient}'s programme to {args.file}.")
    return 0


def import_(conn, args) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {args.file}: {getattr(e, 'strerror', None) or e}") from None
    try:
        p = pg.from_toml(text)
    except pg.ProgrammeError as e:
        raise UserError(f"{args.file}: {e}; nothing was saved") from None
    return _save(conn, args, p)


def _value(text: str):
    """A --set value as TOML reads it (12, 6.5, "both"); bare words are text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply(p: pg.Programme, args) -> None:
    d = p.as_dict()
    if args.remove is not None:
        if not 1 <= args.remove <= len(d["items"]):
            raise UserError(f"there is no item {args.remove} (the programme has {len(d['items'])})")
        del d["items"][args.remove - 1]
    for ex in args.add:
        held = ex in pg.HOLD_EXERCISES
        d["items"].append(asdict(pg.Item(exercise=ex, reps=0, hold_s=30.0) if held else pg.Item(exercise=ex)))
    for kv in args.set:
        key, sep, text = kv.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set wants KEY=VALUE, e.g. reps=12, not {kv!r}")
        if key in ("sessions_per_week", "notes"):
            d[key] = _value(text.strip())
            continue
        n = args.item if args.item is not None else (len(d["items"]) if args.add else 1 if len(d["items"]) == 1 else None)
        if n is None:
            raise UserError(f"the programme has {len(d['items'])} items: say which with --item N")
        if not 1 <= n <= len(d["items"]):
            raise UserError(f"there is no item {n} (the programme has {len(d['items'])})")
        d["items"][n - 1][key] = _value(text.strip())
    d["item"] = d.pop("items")
    try:
        new = pg.from_dict(d)
    except pg.ProgrammeError as e:
        raise UserError(f"{e}; nothing was saved") from None
    p.items, p.sessions_per_week, p.notes = new.items, new.sessions_per_week, new.notes


def edit(conn, args) -> int:
    s = _stored(conn, args, required=False)
    p = s.programme if s else pg.Programme(items=[pg.Item()])
    if args.set or args.add or args.remove is not None:
        if s is None and not args.add:
            p = pg.Programme(items=[pg.Item()])
        _apply(p, args)
        return _save(conn, args, p)
    return _edit_in_editor(conn, args, p, s)


def _edit_in_editor(conn, args, p, s) -> int:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UserError("set $EDITOR to edit the programme file, or change it with --set KEY=VALUE "
                        "(see `hiplevel programme edit --help`)")
    head = f"programme of {args.patient}" + (f", edited from version {s.version}" if s else ", new")
    before = pg.to_toml(p, header=head)
    fd, name = tempfile.mkstemp(prefix=f"programme-{args.patient}-", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(before)
    try:
        done = subprocess.run([*shlex.split(editor), name])
    except OSError as e:
        raise UserError(f"cannot start the editor {editor!r}: {e.strerror}") from None
    text = Path(name).read_text(encoding="utf-8")
    if done.returncode != 0:
        raise UserError(f"the editor exited with status {done.returncode}; nothing was saved (your text "
                        f"is in {name})")
    if text == before and s is not None:
        os.unlink(name)
        print("No change: the programme stays at version", s.version)
        return 0
    try:
        new = pg.from_toml(text)
    except pg.ProgrammeError as e:
        raise UserError(f"{e}; nothing was saved (your text is kept in {name}: fix it and run "
                        f"`hiplevel programme import {name} --patient {args.patient}`)") from None
    os.unlink(name)
    return _save(conn, args, new)


ACTIONS = {"show": show, "export": export, "import": import_, "edit": edit}
