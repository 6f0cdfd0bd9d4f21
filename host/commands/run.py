"""Connect to a sensor and give live feedback (`hiplevel run`).

Opens the link (serial port, or BLE: hiplevel's own sensor, a Movella DOT or a Movesense, see
docs/sensors.md), guides the calibration (stand still, then two slow forward
bends; `--calibration standing` for the quick one), then plays the cue and shows the live angle: in a
window when a display is available, otherwise (or with --headless) as a console view. The session is
recorded (docs/sessions.md); with --events its events are also written as JSON lines. Headless, the
command exits after the stream ends and prints a short summary.
"""
from __future__ import annotations

import argparse

from host.commands.argtypes import fraction, hysteresis_deg, min_on_s, number, set_reps, threshold_deg
from host.errors import UserError
from host.processing.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from host.processing.exercise import EXERCISES, FEEDBACK, SWINGS, THRESHOLD_DEFAULT_DEG, ExerciseConfig
from host.processing.pipeline import PipelineConfig
from host.protocol.frames import SENSOR_RATES_HZ
from host.session.live_app import LiveOptions, run_live
from host.sinks.lsl import settings_from_args


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
    from host.devices import KINDS
    p.add_argument("--sensor", choices=KINDS, default=None,
                   help="with --ble: the kind of sensor (default: what it advertises; docs/sensors.md)")
    p.add_argument("--sensor-rate", type=int, default=None, metavar="HZ",
                   help="with --sensor dot (1-60 Hz, default 60) or movesense (13-1666 Hz, default 104): "
                        "the rate to stream at")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_link_arguments(p)
    from host.sinks.recorder import add_recording_arguments
    add_recording_arguments(p)  # --db, --patient, --no-record
    p.add_argument("--exercise", choices=EXERCISES, default="hip-dip")
    p.add_argument("--stance", choices=["left", "right"], default="left",
                   help="the leg you stand on; the cue watches the other side")
    p.add_argument("--threshold", type=threshold_deg, default=None, metavar="DEG",
                   help="drop that triggers the cue, both sides (default 5; walk: 6.5, see docs/gait.md)")
    p.add_argument("--threshold-left", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--threshold-right", type=threshold_deg, default=None, metavar="DEG")
    p.add_argument("--calibration", choices=["bends", "standing", "walk"], default=None,
                   help="bends (default): stand still, then two slow forward bends that find how the "
                        "belt sits; standing: stand still only, belt assumed square over the sacrum; "
                        "walk (the default with --exercise walk): stand still, then walk straight")
    p.add_argument("--estimator", default=DEFAULT_ESTIMATOR, choices=sorted(ESTIMATORS),
                   help=f"orientation filter (default {DEFAULT_ESTIMATOR})")
    p.add_argument("--rate", type=int, choices=SENSOR_RATES_HZ, default=None, metavar="HZ",
                   help="ask the sensor for this sample rate: 52, 104, 208 or 416 Hz, the LSM6DS3TR-C's "
                        "rates (default: the sensor's own, 208 on the hiplevel firmware)")
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
    cue.add_argument("--hysteresis", type=hysteresis_deg, default=1.0, metavar="DEG",
                     help="how far back the drop must come before the cue stops (default 1)")
    cue.add_argument("--min-on", type=min_on_s, default=0.25, metavar="S",
                     help="shortest cue, seconds (default 0.25)")
    cue.add_argument("--set-reps", type=set_reps, default=0, metavar="N",
                     help="reps per set: a set summary after every N reps (default: one set)")
    cue.add_argument("--fade", type=fade_shares, default=None, metavar="FIRST:LAST",
                     help="faded feedback: percent of reps with an audible cue at the first and "
                          "last rep of each set, e.g. 100:20 (needs --set-reps)")
    ex = p.add_argument_group("exercise settings")
    ex.add_argument("--swing", choices=SWINGS, default="front-back",
                    help="hip-swings: the free leg's movement (default front-back)")
    ex.add_argument("--target-deg", type=number(3.0, 30.0, what="a target tilt from 3 to 30 degrees"),
                    default=10.0, metavar="DEG", help="pelvic-tilt: the forward tilt to reach and hold (default 10)")
    ex.add_argument("--hold-s", type=number(3.0, 300.0, what="a hold from 3 to 300 seconds"), default=20.0,
                    metavar="S", help="timed-hold: seconds on the stance leg per hold (default 20)")
    ex.add_argument("--rest-s", type=number(0.0, 300.0, what="a rest from 0 to 300 seconds"), default=10.0,
                    metavar="S", help="timed-hold: rest on both feet between holds (default 10)")


def make_transport(args):
    if getattr(args, "ble", None):
        from host.links.base import TransportError
        from host.links.ble.transport import BleTransport
        try:
            return BleTransport(args.ble, hci=args.ble_hci, sensor=args.sensor, rate_hz=args.sensor_rate)
        except TransportError as e:
            raise UserError(str(e)) from None
    if args.sensor not in (None, "hiplevel") or args.sensor_rate is not None:
        raise UserError("--sensor and --sensor-rate are for Bluetooth sensors (--ble)")
    from host.links.serial import SerialTransport
    return SerialTransport(args.serial)


def exercise_config(args) -> ExerciseConfig:
    from host.processing.gait import DEFAULT_WALK_THRESHOLD_DEG
    default = DEFAULT_WALK_THRESHOLD_DEG if args.exercise == "walk" else THRESHOLD_DEFAULT_DEG
    base = args.threshold if args.threshold is not None else default
    fade = args.fade or (1.0, 1.0)
    try:
        return ExerciseConfig(exercise=args.exercise, stance=args.stance,
                              threshold_left_deg=args.threshold_left or base,
                              threshold_right_deg=args.threshold_right or base,
                              hysteresis_deg=args.hysteresis, min_on_s=args.min_on,
                              feedback=args.feedback, bandwidth_deg=args.bandwidth,
                              fade_start=fade[0], fade_end=fade[1], set_reps=args.set_reps,
                              swing=args.swing, target_deg=args.target_deg, hold_s=args.hold_s, rest_s=args.rest_s)
    except ValueError as e:
        raise UserError(str(e)) from None


def _home_patient() -> str:
    from host.sinks.clinic_link import paired_patient
    return paired_patient() or "default"


def live_options(args) -> LiveOptions:
    return LiveOptions(headless=args.headless, events=args.events, angles=args.angles, mute=args.mute,
                       volume=args.volume, private_audio=getattr(args, "private_audio", False),
                       record=not args.no_record, db=args.db, patient=args.patient or _home_patient(),
                       share_live=getattr(args, "share_live", False),
                       title=f"hiplevel — {args.exercise}, {args.stance} leg stance",
                       rate_hz=getattr(args, "rate", None), lsl=settings_from_args(args))


def run(args) -> int:
    if getattr(ESTIMATORS[args.estimator], "live", True) is False:
        raise UserError(f"the {args.estimator} estimator needs the whole recording; it cannot run live")
    if args.calibration is None:
        args.calibration = "walk" if args.exercise == "walk" else "bends"
    cfg = PipelineConfig(exercise=exercise_config(args), estimator=args.estimator,
                         calibration=args.calibration)
    return run_live(make_transport(args), cfg, live_options(args))
