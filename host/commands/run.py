"""Connect to a sensor and give live feedback (`hiplevel run`).

Opens the link (serial port, or BLE), guides the calibration (stand still, then two slow forward
bends; `--calibration standing` for the quick one), then plays the cue and shows the live angle: in a
window when a display is available, otherwise (or with --headless) as a console view. The session is
recorded (docs/sessions.md); with --events its events are also written as JSON lines. Headless, the
command exits after the stream ends and prints a short summary.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from host.commands.argtypes import fraction, threshold_deg
from host.cli import UserError
from host.processing.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from host.processing.exercise import EXERCISES, FEEDBACK, ExerciseConfig
from host.processing.pipeline import PipelineConfig


def fade_shares(text: str) -> tuple[float, float]:
    try:
        first, last = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fade wants two percentages like 100:20, got {text!r}")
    if not (0 <= first <= 100 and 0 <= last <= 100):
        raise argparse.ArgumentTypeError("--fade percentages go from 0 to 100")
    return first / 100.0, last / 100.0


def add_link_arguments(p: argparse.ArgumentParser) -> None:
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--serial", metavar="PORT", help="serial port of the sensor, e.g. /dev/ttyACM0")
    link.add_argument("--ble", metavar="NAME_OR_ADDRESS", help="Bluetooth LE sensor (see `hiplevel scan`)")
    p.add_argument("--ble-hci", metavar="SPEC", default=None,
                   help="Bluetooth controller to use instead of the computer's own, e.g. the simulator's "
                        "virtual radio tcp-client:127.0.0.1:PORT (or set HIPLEVEL_BLE_HCI)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_link_arguments(p)
    from host.sinks.recorder import add_recording_arguments
    add_recording_arguments(p)  # --db, --patient, --no-record
    p.add_argument("--exercise", choices=EXERCISES, default="hip-dip")
    p.add_argument("--stance", choices=["left", "right"], default="left",
                   help="the leg you stand on; the cue watches the other side")
    p.add_argument("--threshold", type=threshold_deg, default=None, metavar="DEG",
                   help="drop that triggers the cue, both sides (default 5)")
    p.add_argument("--threshold-left", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--threshold-right", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--calibration", choices=["bends", "standing"], default="bends",
                   help="bends (default): stand still, then two slow forward bends that find how the "
                        "belt sits; standing: stand still only, belt assumed square over the sacrum")
    p.add_argument("--estimator", default=DEFAULT_ESTIMATOR, choices=sorted(ESTIMATORS),
                   help=f"orientation filter (default {DEFAULT_ESTIMATOR})")
    p.add_argument("--headless", action="store_true", help="console view instead of a window")
    p.add_argument("--events", metavar="PATH", help="write events as JSON lines to PATH ('-' = stdout)")
    p.add_argument("--angles", metavar="PATH", help="write the angle of every sample to a CSV file")
    p.add_argument("--mute", action="store_true", help="no cue tone")
    p.add_argument("--volume", type=fraction, default=0.6, help="cue volume 0..1 (default 0.6)")
    from host.sinks.lsl import add_arguments as add_lsl_arguments
    add_lsl_arguments(p)  # --lsl, --lsl-config, --lsl-local, --lsl-name
    cue = p.add_argument_group("cue design")
    cue.add_argument("--feedback", choices=FEEDBACK, default="threshold",
                     help="threshold: cue past the threshold (default); bandwidth: silent inside "
                          "±--bandwidth of level, cue outside (single-leg-squat, keep-level)")
    cue.add_argument("--bandwidth", type=threshold_deg, default=2.0, metavar="DEG",
                     help="half-width of the silent zone for --feedback bandwidth (default 2)")
    cue.add_argument("--hysteresis", type=float, default=1.0, metavar="DEG",
                     help="how far back the drop must come before the cue stops (default 1)")
    cue.add_argument("--min-on", type=float, default=0.25, metavar="S",
                     help="shortest cue, seconds (default 0.25)")
    cue.add_argument("--set-reps", type=int, default=0, metavar="N",
                     help="reps per set: a set summary after every N reps (default: one set)")
    cue.add_argument("--fade", type=fade_shares, default=None, metavar="FIRST:LAST",
                     help="faded feedback: percent of reps with an audible cue at the first and "
                          "last rep of each set, e.g. 100:20 (needs --set-reps)")


def make_transport(args):
    if getattr(args, "ble", None):
        from host.links.ble.transport import BleTransport
        return BleTransport(args.ble, hci=args.ble_hci)
    from host.links.serial import SerialTransport
    return SerialTransport(args.serial)


def exercise_config(args) -> ExerciseConfig:
    base = args.threshold if args.threshold is not None else 5.0
    fade = args.fade or (1.0, 1.0)
    try:
        return ExerciseConfig(exercise=args.exercise, stance=args.stance,
                              threshold_left_deg=args.threshold_left or base,
                              threshold_right_deg=args.threshold_right or base,
                              hysteresis_deg=args.hysteresis, min_on_s=args.min_on,
                              feedback=args.feedback, bandwidth_deg=args.bandwidth,
                              fade_start=fade[0], fade_end=fade[1], set_reps=args.set_reps)
    except ValueError as e:
        raise UserError(str(e)) from None


def open_audio(args, say):
    """The cue player, or None with a plain message when there is no sound output."""
    if args.mute:
        return None
    from host.sinks.audio import AudioUnavailable, CuePlayer
    from host.sinks.sound_server import ensure_server
    # The user's sound server (or, under sudo, the desktop user's). The demo may start a private
    # one with a silent virtual output so the whole cue path still runs on a box without sound.
    private = ensure_server(start_private=getattr(args, "private_audio", False))
    if private is not None:
        say("No sound server found: started a private one; cue tones play into a silent virtual "
            "output (on a desktop you would hear them).")
    player = CuePlayer(volume=max(0.0, min(1.0, args.volume)))
    try:
        player.start()
    except AudioUnavailable as e:
        say(str(e))
        return None
    player.private_server = private  # stopped with the player, see close_audio
    return player


def close_audio(player) -> None:
    if player is not None:
        player.close()
        if getattr(player, "private_server", None) is not None:
            player.private_server.stop()


def open_lsl(args, session, replay: bool = False):
    """The LSL outlets for this session (host.sinks.lsl), or None without --lsl."""
    from host.sinks.lsl import LslUnavailable, open_sink
    try:
        sink = open_sink(args, replay=replay)
    except LslUnavailable as e:
        raise UserError(str(e)) from None
    if sink is not None:
        sink.attach(session)
        t = session.transport
        sink.describe_sensor(getattr(t, "manufacturer", None), getattr(t, "model", None))
    return sink


class Commands:
    """What the GUI may ask of a running session; each call crosses to the pipeline's thread."""

    def __init__(self, session, player, recorder=None):
        self.session, self.player, self.recorder = session, player, recorder

    def recalibrate(self):
        self.session.call(self.session.pipeline.recalibrate)

    def set_threshold(self, side: str, deg: float):
        self.session.call(self.session.pipeline.set_threshold, side, deg)

    def end_set(self):
        self.session.call(self.session.pipeline.end_set)

    def set_muted(self, muted: bool):
        if self.player is not None:
            self.player.set_muted(muted)

    def set_patient(self, label: str):
        """Record the session under this patient label (ValueError with the reason if refused)."""
        if self.recorder is None:
            raise ValueError("this session is not being recorded")
        self.recorder.set_patient(label)


def run(args) -> int:
    from host.sinks.event_log import EventLog
    from host.sinks.live import LiveBuffer
    from host.session.runner import AngleTrace, AudioCueSink, Session

    if getattr(ESTIMATORS[args.estimator], "live", True) is False:
        raise UserError(f"the {args.estimator} estimator needs the whole recording; it cannot run live")
    cfg = PipelineConfig(exercise=exercise_config(args), estimator=args.estimator,
                         calibration=args.calibration)
    gui = not args.headless
    if gui:
        try:
            from host.gui.live_window import qt_display_available
            gui = qt_display_available()
        except ImportError as e:  # Qt's libraries missing: the console view still works
            print(f"The window cannot open ({e}); showing the console view.", file=sys.stderr)
            gui = False
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
    from host.sinks.recorder import open_recorder
    recorder = open_recorder(args, cfg, say, live)  # None with --no-record; never stops the session
    session = Session(make_transport(args), cfg, events=events, live=live,
                      cue=AudioCueSink(player) if player else None, trace=trace, recorder=recorder)
    lsl = open_lsl(args, session)
    try:
        if gui:
            from host.gui.live_window import run_gui
            thread = None

            def start():
                nonlocal thread
                thread = session.start_in_thread()

            def stop():
                session.stop()
                if thread is not None:
                    thread.join(timeout=3)

            recording = recorder is not None and recorder.failed is None
            run_gui(live, start=start, stop=stop, commands=Commands(session, player, recorder),
                    title=f"hiplevel — {args.exercise}, {args.stance} leg stance",
                    patients=recorder.known_patients() if recording else None,
                    patient=recorder.patient if recording else None)
            summary = session.summary
        else:
            from host.sinks.console import run_with_console
            summary = asyncio.run(run_with_console(session, live, text_out))
    finally:
        if lsl is not None:
            lsl.close()
        close_audio(player)
        if trace is not None:
            trace.close()
        events.close()
        if recorder is not None:
            recorder.close()
    if summary.open_failed:
        raise UserError(summary.reason)
    say(summary.text())
    if recorder is not None:
        say(recorder.summary_line())
    return 0 if summary.ok else 1


def build_parser_for_demo() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hiplevel run")
    add_arguments(p)
    return p
