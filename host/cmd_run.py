"""Connect to a sensor and give live feedback (`hiplevel run`).

Opens the link (serial port, or BLE), calibrates from the first seconds of standing still, then
plays the cue and shows the live angle: in a window when a display is available, otherwise (or with
--headless) as a console view. With --events the session's events are written as JSON lines.
Headless, the command exits after the stream ends and prints a short summary.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from .cli import UserError
from .estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from .exercise import EXERCISES, ExerciseConfig
from .pipeline import PipelineConfig


def threshold_deg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected degrees, e.g. 5, got {text!r}")
    if not 2.0 <= v <= 15.0:
        raise argparse.ArgumentTypeError(f"thresholds go from 2 to 15 degrees, got {v:g}")
    return v


def add_link_arguments(p: argparse.ArgumentParser) -> None:
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--serial", metavar="PORT", help="serial port of the sensor, e.g. /dev/ttyACM0")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_link_arguments(p)
    p.add_argument("--exercise", choices=EXERCISES, default="hip-dip")
    p.add_argument("--stance", choices=["left", "right"], default="left",
                   help="the leg you stand on; the cue watches the other side")
    p.add_argument("--threshold", type=threshold_deg, default=None, metavar="DEG",
                   help="drop that triggers the cue, both sides (default 5)")
    p.add_argument("--threshold-left", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--threshold-right", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--estimator", default=DEFAULT_ESTIMATOR, choices=sorted(ESTIMATORS),
                   help=f"orientation filter (default {DEFAULT_ESTIMATOR})")
    p.add_argument("--headless", action="store_true", help="console view instead of a window")
    p.add_argument("--events", metavar="PATH", help="write events as JSON lines to PATH ('-' = stdout)")
    p.add_argument("--angles", metavar="PATH", help="write the angle of every sample to a CSV file")
    p.add_argument("--mute", action="store_true", help="no cue tone")
    p.add_argument("--volume", type=float, default=0.6, help="cue volume 0..1 (default 0.6)")


def make_transport(args):
    from .transport_serial import SerialTransport
    return SerialTransport(args.serial)


def exercise_config(args) -> ExerciseConfig:
    base = args.threshold if args.threshold is not None else 5.0
    return ExerciseConfig(exercise=args.exercise, stance=args.stance,
                          threshold_left_deg=args.threshold_left or base,
                          threshold_right_deg=args.threshold_right or base)


def open_audio(args, say):
    """The cue player, or None with a plain message when there is no sound output."""
    if args.mute:
        return None
    from .audio import AudioUnavailable, CuePlayer
    player = CuePlayer(volume=max(0.0, min(1.0, args.volume)))
    try:
        player.start()
    except AudioUnavailable as e:
        say(str(e))
        return None
    return player


class Commands:
    """What the GUI may ask of a running session; each call crosses to the pipeline's thread."""

    def __init__(self, session, player):
        self.session, self.player = session, player

    def recalibrate(self):
        self.session.call(self.session.pipeline.recalibrate)

    def set_threshold(self, side: str, deg: float):
        self.session.call(self.session.pipeline.set_threshold, side, deg)

    def set_muted(self, muted: bool):
        if self.player is not None:
            self.player.set_muted(muted)


def run(args) -> int:
    from .events import EventLog
    from .live import LiveBuffer
    from .runner import AngleTrace, AudioCueSink, Session

    if getattr(ESTIMATORS[args.estimator], "live", True) is False:
        raise UserError(f"the {args.estimator} estimator needs the whole recording; it cannot run live")
    cfg = PipelineConfig(exercise=exercise_config(args), estimator=args.estimator)
    gui = not args.headless
    if gui:
        from .gui import qt_display_available
        gui = qt_display_available()
    text_out = sys.stderr if args.events == "-" else sys.stdout
    say = lambda msg: print(msg, file=text_out, flush=True)
    if not gui and not args.headless:
        say("No display found: showing the console view.")
    events = EventLog(args.events)
    trace = None
    if args.angles:
        try:
            trace = AngleTrace(args.angles)
        except OSError as e:
            raise UserError(f"cannot write the angle file {args.angles}: {e.strerror}") from None
    player = open_audio(args, say)
    live = LiveBuffer()
    session = Session(make_transport(args), cfg, events=events, live=live,
                      cue=AudioCueSink(player) if player else None, trace=trace)
    try:
        if gui:
            from .gui import run_gui
            thread = None

            def start():
                nonlocal thread
                thread = session.start_in_thread()

            def stop():
                session.stop()
                if thread is not None:
                    thread.join(timeout=3)

            run_gui(live, start=start, stop=stop, commands=Commands(session, player),
                    title=f"hiplevel — {args.exercise}, {args.stance} leg stance")
            summary = session.summary
        else:
            summary = asyncio.run(_headless(session, live, text_out))
    finally:
        if player is not None:
            player.close()
        if trace is not None:
            trace.close()
        events.close()
    if summary.open_failed:
        raise UserError(summary.reason)
    say(summary.text())
    return 0 if summary.ok else 1


async def _headless(session, live, out):
    from .console import console_view
    view = asyncio.create_task(console_view(live, session.pipeline, out, out.isatty()))
    try:
        return await session.run()
    finally:
        view.cancel()
        if out.isatty():
            out.write("\n")


def build_parser_for_demo() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hiplevel run")
    add_arguments(p)
    return p
