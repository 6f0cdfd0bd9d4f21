"""Replay a recorded session through the live pipeline (`hiplevel replay SESSION`).

In: the stored frames of a session (host.store), fed by host.links.replay.ReplayTransport into
runner.Session, so the same decoder, estimator, calibration and exercise logic run as live. The
block's stored settings are used unless overridden (--threshold, --estimator, ...), which is how a
session is re-analysed with other thresholds or a newer estimator. `--speed X` paces it at X times
real time with the console view; `--fast` runs as fast as the pipeline goes.
Out: the reps of the replay, compared with the reps recorded live; optionally the replay's events as
JSON lines (--events). `replay_block` is also what `export` and `report` use to get per-sample angles.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field

from host import store
from host.cli import UserError
from host.commands.argtypes import threshold_deg
from host.commands.sessions import (add_db_argument, describe_block, get_session, open_db, pick_blocks,
                           plain_db_errors, session_arg)
from host.processing.estimators import ESTIMATORS
from host.processing.exercise import EXERCISES, ExerciseConfig
from host.processing.pipeline import PipelineConfig


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


def config_for(s: store.BlockInfo, overrides=None) -> PipelineConfig:
    """The block's recorded pipeline settings, with any overrides from the command line."""
    stored = dict(s.settings or {})
    ex_stored = dict(stored.get("exercise") or {})
    ex_stored.setdefault("exercise", s.exercise)
    ex_stored.setdefault("stance", s.stance)
    ex_stored.setdefault("threshold_left_deg", s.threshold_left_deg)
    ex_stored.setdefault("threshold_right_deg", s.threshold_right_deg)
    o = overrides
    if o is not None:
        for name in ("exercise", "stance"):
            if getattr(o, name, None) is not None:
                ex_stored[name] = getattr(o, name)
        base = getattr(o, "threshold", None)
        for side in ("left", "right"):
            v = getattr(o, f"threshold_{side}", None) or base
            if v is not None:
                ex_stored[f"threshold_{side}_deg"] = v
    # keep only fields this version knows, so a block recorded by another version still replays
    ex_fields = {f.name for f in dataclasses.fields(ExerciseConfig)}
    try:
        ex = ExerciseConfig(**{k: v for k, v in ex_stored.items() if k in ex_fields})
    except ValueError as e:
        raise UserError(f"the settings of session {s.session_id} block {s.number} cannot be used: {e}") from None
    pipe_fields = {f.name for f in dataclasses.fields(PipelineConfig)} - {"exercise"}
    kw = {k: v for k, v in stored.items() if k in pipe_fields}
    kw.setdefault("estimator", s.estimator)
    if o is not None and getattr(o, "estimator", None):
        kw["estimator"] = o.estimator
    if kw.get("estimator") not in ESTIMATORS:
        raise UserError(f"session {s.session_id} was recorded with the estimator {kw.get('estimator')!r}, "
                        f"which this version does not have; choose one with --estimator "
                        f"({', '.join(sorted(ESTIMATORS))})")
    if getattr(ESTIMATORS[kw["estimator"]], "live", True) is False:
        raise UserError(f"the {kw['estimator']} estimator needs the whole recording; replay runs the live pipeline")
    return PipelineConfig(exercise=ex, **kw)


def _no_display():
    from host.sinks.live import LiveBuffer

    class NoDisplay(LiveBuffer):
        """No one watches a replay without its console view: skip the display's per-sample copy."""

        def append(self, *args) -> None:
            pass

        def update_status(self, **fields) -> None:
            pass
    return NoDisplay(capacity=1)


class _Collect:
    """An EventLog stand-in that keeps the events (and passes them on to a real log, if any)."""

    def __init__(self, log=None):
        self.events: list[dict] = []
        self.log = log

    def write(self, event: dict) -> None:
        self.events.append(event)
        if self.log is not None:
            self.log.write(event)


@dataclass
class Replay:
    summary: object
    events: list
    pipeline: object
    transport: object
    wall_s: float
    data_s: float              # device seconds replayed
    samples: dict = field(default_factory=dict)  # from trace: seq, t_device_us, obliquity, forward tilt

    @property
    def reps(self) -> list[dict]:
        return [e for e in self.events if e.get("event") == "rep"]

    @property
    def ok(self) -> bool:
        return self.summary.ok or self.transport.finished


def replay_block(conn, s: store.BlockInfo, cfg: PipelineConfig, speed: float | None = None, log=None,
               trace: bool = False, console=None, lsl_args=None) -> Replay:
    """Run one stored block through runner.Session. trace=True also returns the per-sample angles."""
    from host.sinks.live import LiveBuffer
    from host.session.runner import Session
    from host.links.replay import ReplayTransport

    cols = {"seq": [], "t_device_us": [], "obliquity_deg": [], "forward_tilt_deg": []}

    def tracer(seq, t_us, obl, fwd, _add=tuple(c.append for c in cols.values())):
        _add[0](seq)
        _add[1](t_us)
        _add[2](obl)
        _add[3](fwd)
    transport = ReplayTransport(conn, s, speed=speed)
    live = LiveBuffer() if console is not None else _no_display()
    collect = _Collect(log)
    # a recording cannot fall silent, so the no-data timeout is off
    session = Session(transport, cfg, events=collect, live=live, trace=tracer if trace else None,
                      no_data_timeout_s=math.inf)
    lsl = None
    if lsl_args is not None:  # --lsl: the replay's angles and events as LSL streams
        from host.commands.run import open_lsl
        lsl = open_lsl(lsl_args, session, replay=True)
    t0 = time.perf_counter()
    if console is not None:
        from host.sinks.console import run_with_console
        summary = asyncio.run(run_with_console(session, live, console))
    else:
        summary = asyncio.run(session.run())
    wall = time.perf_counter() - t0
    if lsl is not None:
        lsl.close()
    if summary.open_failed:
        raise UserError(summary.reason)
    return Replay(summary, collect.events, session.pipeline, transport, wall, session.pipeline.t_s, cols)


def compare_reps(live_reps: list[dict], replay_reps: list[dict]) -> str:
    """One sentence: are the replay's reps those recorded live?"""
    def key(r):
        return (r.get("index"), r.get("low_side"), r.get("max_drop_deg"), bool(r.get("cued")))
    n_live, c_live = len(live_reps), sum(1 for r in live_reps if r.get("cued"))
    n_rep, c_rep = len(replay_reps), sum(1 for r in replay_reps if r.get("cued"))
    if [key(r) for r in live_reps] == [key(r) for r in replay_reps]:
        return f"Same reps as recorded live ({n_live} reps, {c_live} with the cue)."
    return (f"Differs from the live recording: replay {n_rep} reps, {c_rep} with the cue; "
            f"live {n_live} reps, {c_live} with the cue.")


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
                if cfg.exercise != config_for(s).exercise or cfg.estimator != s.estimator:
                    ex = cfg.exercise
                    say(f"Re-analysing with: {ex.exercise}, {ex.stance} leg stance, thresholds left "
                        f"{ex.threshold_left_deg:g}° / right {ex.threshold_right_deg:g}°, {cfg.estimator}.")
                speed = None if args.fast else args.speed
                r = replay_block(conn, s, cfg, speed=speed, log=log, console=None if args.fast else out,
                                 lsl_args=args)
                say(rep_table(r.reps) if r.reps else "No reps.")
                say(compare_reps(store.reps(conn, s.id), r.reps))
                if s.end is None:
                    say("The recording was interrupted (the app stopped before the sensor stopped); "
                        "everything up to then was replayed.")
                elif not r.ok:
                    say(f"Replay ended early: {r.summary.reason}.")
                rate = r.data_s / r.wall_s if r.wall_s > 0 else float("inf")
                say(f"Replayed {r.data_s:.1f} s of data in {r.wall_s:.2f} s ({rate:.0f}x real time).")
                all_ok &= r.ok
        finally:
            log.close()
    finally:
        conn.close()
    return 0 if all_ok else 1
