"""Replay a recorded session through the live pipeline (`hiplevel replay SESSION`).

In: the stored frames of a session (host.store), fed by host.links.replay.ReplayTransport into
runner.StreamRunner, so the same decoder, estimator, calibration and exercise logic run as live. The
block's stored settings are used unless overridden (--threshold, --estimator, ...), which is how a
session is re-analysed with other thresholds or a newer estimator. `--speed X` paces it at X times
real time with the console view; `--fast` runs as fast as the pipeline goes.
Out: the reps of the replay, compared with the reps recorded live; optionally the replay's events as
JSON lines (--events), and as Lab Streaming Layer streams (--lsl, host.sinks.lsl). The replay itself is host.session.review; this module parses and says.
"""
from __future__ import annotations

import argparse
import sys

from host import store
from host.commands.argtypes import threshold_deg
from host.commands.db_args import add_db_argument, get_session, open_db, pick_blocks, plain_db_errors, session_arg
from host.report.text import describe_block
from host.processing.calibration import METHODS
from host.processing.estimators import ESTIMATORS
from host.processing.exercise import EXERCISES
from host.session.review import compare_reps, config_for, replay_block


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1 or 4, got {text!r}")
    if not 0.05 <= v <= 1000:
        raise argparse.ArgumentTypeError(f"the speed goes from 0.05 to 1000 times real time, got {v:g}")
    return v


def add_override_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("re-analysis (default: the settings the block was recorded with)")
    g.add_argument("--exercise", choices=EXERCISES, default=None)
    g.add_argument("--stance", choices=["left", "right"], default=None)
    g.add_argument("--threshold", type=threshold_deg, default=None, metavar="DEG", help="both sides")
    g.add_argument("--threshold-left", type=threshold_deg, default=None, metavar="DEG")
    g.add_argument("--threshold-right", type=threshold_deg, default=None, metavar="DEG")
    g.add_argument("--estimator", choices=sorted(ESTIMATORS), default=None)
    g.add_argument("--calibration", choices=METHODS, default=None,
                   help="calibrate the replay this way; `standing` calibrates a recording whose guided "
                        "calibration never finished from its first still phase")


def add_arguments(p: argparse.ArgumentParser) -> None:
    session_arg(p)
    p.add_argument("--block", type=int, default=None, metavar="N", help="only block N (default: every block)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=_speed, default=1.0, metavar="X", help="X times real time (default 1)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible (no console view)")
    p.add_argument("--events", metavar="PATH", help="write the replay's events as JSON lines ('-' = stdout)")
    add_override_arguments(p)
    add_db_argument(p)
    from host.sinks.lsl import add_arguments as add_lsl_arguments
    add_lsl_arguments(p)


def rep_table(reps: list[dict]) -> str:
    lines = [" rep  side   max drop  duration  cue"]
    for r in reps:
        dur = r.get("duration_s")
        lines.append(f"{r.get('index', ''):>4}  {str(r.get('low_side', '')):<5}  {r.get('max_drop_deg', float('nan')):6.1f}°"
                     f"  {'' if dur is None else f'{dur:6.1f} s':>8}  {'yes' if r.get('cued') else ''}")
    return "\n".join(lines)


@plain_db_errors
def run(args) -> int:
    from host.sinks.event_log import EventLog
    from host.sinks.lsl import settings_from_args
    lsl = settings_from_args(args)  # a wrong LSL option is said before the database is opened
    conn = open_db(args)
    try:
        session = get_session(conn, args.session)
        blocks = pick_blocks(session, args.block)
        out = sys.stderr if args.events == "-" else sys.stdout
        say = lambda msg: print(msg, file=out, flush=True)
        log = EventLog(args.events)
        all_ok = True
        try:
            for s in blocks:
                cfg = config_for(s, args)
                say(f"Session {session.id} ({session.patient}, {store.local_time(session.started_utc)}), "
                    f"block {s.number}: {describe_block(s)}.")
                stored = config_for(s)
                if (cfg.exercise != stored.exercise or cfg.estimator != s.estimator
                        or cfg.calibration != stored.calibration):
                    ex = cfg.exercise
                    say(f"Re-analysing with: {ex.exercise}, {ex.stance} leg stance, thresholds left "
                        f"{ex.threshold_left_deg:g}° / right {ex.threshold_right_deg:g}°, {cfg.estimator}, "
                        f"{cfg.calibration} calibration.")
                speed = None if args.fast else args.speed
                # thresholds given here replace the recorded ones, including those changed live
                steer = all(getattr(args, k) is None for k in ("threshold", "threshold_left", "threshold_right"))
                r = replay_block(conn, s, cfg, speed=speed, log=log, console=None if args.fast else out,
                                 steer=steer, lsl=lsl)
                say(rep_table(r.reps) if r.reps else "No reps.")
                say(compare_reps(store.reps(conn, s.id), r.reps).sentence())
                if s.end is None:
                    say("The recording was interrupted (the app stopped before the sensor stopped); "
                        "everything up to then was replayed.")
                elif not r.ok:
                    say(f"Replay ended early: {r.summary.reason}.")
                if not r.summary.calibrated:
                    say("The replay's calibration never finished either, so no reps were counted"
                        + ("" if cfg.calibration == "standing" else "; try --calibration standing") + ".")
                rate = r.data_s / r.wall_s if r.wall_s > 0 else float("inf")
                say(f"Replayed {r.data_s:.1f} s of data in {r.wall_s:.2f} s ({rate:.0f}x real time).")
                all_ok &= r.ok
        finally:
            log.close()
    finally:
        conn.close()
    return 0 if all_ok else 1
