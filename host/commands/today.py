"""Run the next session of a patient's programme (`hiplevel today --patient LABEL`).

Calibrates once, then takes the patient through every item of the programme in order, with spoken
and printed instructions, the rep count, rest timers, switching legs, a pain rating (0-10) after
each item and a summary at the end; an interrupted session resumes where it stopped. With a display
the patient view opens full screen (host.gui.patient_view); headless (or --headless) it prints the
instructions. Argument parsing and wiring only: the session is host.session.today.
"""
from __future__ import annotations

import argparse
import asyncio
import queue
import sys
import threading

from host import store
from host.commands.argtypes import fraction
from host.commands.run import add_link_arguments, make_transport
from host.errors import UserError
from host.processing.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from host.session import programme as pg
from host.session.today import NO_MORE_ANSWERS
from host.sinks.recorder import patient_label


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_link_arguments(p)
    p.add_argument("--patient", type=patient_label, default=None, metavar="LABEL",
                   help="the patient (default: the one this installation is paired for, `hiplevel pair`)")
    p.add_argument("--db", metavar="PATH", help="session database (default: sessions.sqlite in the user's "
                   "data folder, or $HIPLEVEL_DB)")
    p.add_argument("--headless", action="store_true", help="printed instructions instead of the patient view")
    p.add_argument("--voice", choices=["on", "off"], default="on", help="spoken instructions (default on)")
    p.add_argument("--language", default="en", metavar="VOICE",
                   help="espeak-ng voice for the spoken instructions, e.g. en, en-us (default en)")
    p.add_argument("--pain-from", metavar="FILE", default=None,
                   help="pain ratings, one per line (0-10, empty = skipped), instead of asking")
    p.add_argument("--mute", action="store_true", help="no cue tones and no voice")
    p.add_argument("--volume", type=fraction, default=0.6, help="volume 0..1 (default 0.6)")
    p.add_argument("--calibration", choices=["bends", "standing"], default="bends")
    p.add_argument("--estimator", default=DEFAULT_ESTIMATOR, choices=sorted(ESTIMATORS), help=argparse.SUPPRESS)
    p.add_argument("--events", metavar="PATH", help="write events as JSON lines to PATH")
    from host.sinks.recorder import add_share_argument
    add_share_argument(p)


def parse_pain(text: str) -> int | None:
    """'7' -> 7, '' -> None (skipped); ValueError with the reason otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"pain is a whole number from 0 to 10, not {text!r}") from None
    if not 0 <= v <= 10:
        raise ValueError(f"pain is a whole number from 0 to 10, not {v}")
    return v


def pain_queue(args, say) -> queue.Queue:
    answers: queue.Queue = queue.Queue()
    if args.pain_from:
        try:
            lines = open(args.pain_from, encoding="utf-8").read().splitlines()
        except OSError as e:
            raise UserError(f"cannot read {args.pain_from}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            try:
                answers.put(parse_pain(line))
            except ValueError as e:
                raise UserError(f"{args.pain_from} line {n}: {e}") from None
        answers.put(NO_MORE_ANSWERS)
        return answers

    def read_keyboard():  # answers typed at the prompt; a bad one is said and asked again
        for line in sys.stdin:
            try:
                answers.put(parse_pain(line))
            except ValueError as e:
                say("", f"{e}.", kind="quiet")
        answers.put(NO_MORE_ANSWERS)
    if sys.stdin is not None and not sys.stdin.closed:
        threading.Thread(target=read_keyboard, name="hiplevel-pain", daemon=True).start()
    return answers


def _load(db_path, patient):
    try:
        conn = store.connect(db_path, create=True)
    except store.StoreError as e:
        raise UserError(str(e)) from None
    try:
        stored = pg.load(conn, patient)
        if stored is None:
            raise UserError(f"patient {patient} has no programme yet; the therapist makes one with "
                            f"`hiplevel programme edit --patient {patient}`")
        run, resumed = pg.next_run(conn, stored)
        conn.commit()
        return stored, run, resumed
    except pg.ProgrammeError as e:
        raise UserError(f"the stored programme cannot be read: {e}") from None
    finally:
        conn.close()


def run(args) -> int:
    from host.session.today import ProgrammeRunner, TodayResult
    from host.sinks.audio import AudioCueSink, close_cue_player, open_cue_player
    from host.sinks.event_log import EventLog
    from host.sinks.recorder import Recorder
    from host.sinks.speech import open_voice

    from host.sinks import clinic_link
    db_path = args.db or store.default_db_path()
    if args.patient is None:
        args.patient = clinic_link.paired_patient()
        if args.patient is None:
            raise UserError("say whose programme to run: hiplevel today --patient LABEL "
                            "(or pair this installation with the clinic: hiplevel pair URL CODE)")
    clinic_link.fetch_programme(db_path, args.patient, lambda m: print(m, flush=True))
    stored, run_info, resumed = _load(db_path, args.patient)
    steps = pg.steps(stored.programme, run_info.number)
    out = sys.stdout
    print_lock = threading.Lock()
    voice = None

    def say(spoken: str, printed: str | None = None, kind: str = "instruction") -> None:
        text = printed if printed is not None else spoken
        if text:
            with print_lock:
                print(("  " if kind == "count" else "") + text, file=out, flush=True)
        if voice is not None and spoken:
            voice.say(spoken, kind)

    print(f"Today for {args.patient}: programme version {stored.version}, session {run_info.number}"
          + (f" (resumed after {len(run_info.done_steps)} of {len(steps)} sets)." if resumed else "."), flush=True)
    if stored.programme.notes:
        print(f"Notes: {stored.programme.notes}", flush=True)
    player = open_cue_player(args.mute, args.volume, False, lambda m: say("", m, kind="quiet"))
    if args.voice == "on" and player is not None:
        voice = open_voice(player, args.language, lambda m: say("", m, kind="quiet"))
    answers = pain_queue(args, say)
    recorder = Recorder(db_path, args.patient, report=lambda m: say("", m, kind="quiet"))
    events = EventLog(args.events)
    runner = ProgrammeRunner(make_transport(args), steps, run_info, stored, say=say, db_path=db_path,
                             recorder=recorder, pain_answers=answers, estimator=args.estimator,
                             calibration=args.calibration, cue=AudioCueSink(player) if player else None,
                             events=events)
    first = runner.todo[0] if runner.todo else steps[0]
    recorder.start_block(runner.block_settings(first))
    share = clinic_link.start_live_share(db_path, lambda: recorder.session_id, lambda m: say("", m, kind="quiet")) \
        if args.share_live else None
    try:
        if not args.headless and _display(say):
            from host.gui.patient_view import run_patient_view
            run_patient_view(runner, title=f"hiplevel — {args.patient}")
            summary = runner.summary
        else:
            summary = asyncio.run(runner.run())
    finally:
        if voice is not None:
            voice.close()
        close_cue_player(player)
        events.close()
        recorder.close()
        if share is not None:
            share.close()
    if summary.open_failed:
        raise UserError(summary.reason)
    result = TodayResult(completed=runner.completed, resumed=resumed, version=stored.version,
                         run_number=run_info.number, results=runner.results, pain=runner.pain,
                         stream_reason="" if runner.completed else summary.reason)
    print(result.text(), flush=True)
    print(recorder.summary_line(), flush=True)
    clinic_link.auto_upload(db_path, lambda m: print(m, flush=True))
    return 0 if runner.completed else 1


def _display(say) -> bool:
    try:
        from host.gui.display import qt_display_available
        if qt_display_available():
            return True
        say("", "No display found: printing the instructions.", kind="quiet")
    except ImportError as e:
        say("", f"The patient view cannot open ({e}); printing the instructions.", kind="quiet")
    return False
