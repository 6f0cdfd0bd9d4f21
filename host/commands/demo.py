"""The app against the built-in simulated sensor (`hiplevel demo`, what `make demo` runs).

Starts the simulator (`hiplevel sim`) as its own process on a pseudo-terminal, then runs the live
app on it exactly as `hiplevel run --serial` would: a window if there is a display, the console view
otherwise, and the cue tone either way.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from host.errors import UserError
from host.commands.argtypes import threshold_deg
from host.processing.exercise import EXERCISES, THRESHOLD_DEFAULT_DEG
from host.processing.gait import DEFAULT_WALK_THRESHOLD_DEG
from host.sinks.sound_server import end_process

GAITS = ("normal", "trendelenburg", "compensated")  # firmware_sim.walking.GAITS (the simulator's own list)
DEMO_DROPS = "3,7,4,8,2,9,5.5,3,7.5,4"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exercise", choices=[e for e in EXERCISES if e != "keep-level"], default="hip-dip")
    p.add_argument("--stance", choices=["left", "right"], default="left")
    p.add_argument("--drops", default=DEMO_DROPS, help=f"drop per rep, degrees (default {DEMO_DROPS})")
    p.add_argument("--reps", type=int, default=None, help="reps (default: one per drop)")
    p.add_argument("--speed", type=float, default=1.0, help="simulation speed (default real time)")
    p.add_argument("--threshold", type=threshold_deg, default=None, metavar="DEG",
                   help=f"cue threshold, degrees of drop (default {THRESHOLD_DEFAULT_DEG:g}; walk: "
                        f"{DEFAULT_WALK_THRESHOLD_DEG:g}, see docs/gait.md)")
    p.add_argument("--gait", choices=GAITS, default="trendelenburg",
                   help="--exercise walk: the simulated gait (default trendelenburg, weak right hip, with U-turns)")
    p.add_argument("--headless", action="store_true", help="console view instead of a window")
    p.add_argument("--mute", action="store_true")
    p.add_argument("--events", metavar="PATH", help="write events as JSON lines")
    from host.sinks.lsl import add_arguments as add_lsl_arguments
    add_lsl_arguments(p)


def start_sim(sim_args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start `hiplevel sim` and return (process, port) once it has said where to connect."""
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "sim", *sim_args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "serial":
        proc.kill()
        raise UserError("the simulated sensor did not start (see the messages above)")
    return proc, line[1]


def run(args) -> int:
    from host.links.serial import SerialTransport
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import PipelineConfig
    from host.session.live_app import LiveOptions, run_live
    from host.sinks.lsl import settings_from_args
    walk = args.exercise == "walk"
    if walk:
        sim_args = ["--exercise", "walk", "--gait", args.gait, "--weak-side", "right", "--turns",
                    "--steps", "40", "--speed", str(args.speed)]
    else:
        sim_args = ["--exercise", args.exercise, "--stance", args.stance, "--drops", args.drops,
                    "--speed", str(args.speed)]
    if args.reps is not None and not walk:
        sim_args += ["--reps", str(args.reps)]
    threshold = args.threshold if args.threshold is not None else (
        DEFAULT_WALK_THRESHOLD_DEG if walk else THRESHOLD_DEFAULT_DEG)
    cfg = PipelineConfig(exercise=ExerciseConfig(exercise=args.exercise, stance=args.stance,
                                                 threshold_left_deg=threshold,
                                                 threshold_right_deg=threshold),
                         calibration="walk" if walk else "bends")
    # private_audio: a headless box without sound still plays the tone (into a silent virtual output)
    opts = LiveOptions(headless=args.headless, events=args.events, mute=args.mute, private_audio=True,
                       patient="demo", title="hiplevel — walking" if walk else
                       f"hiplevel — {args.exercise}, {args.stance} leg stance",
                       lsl=settings_from_args(args))
    proc, port = start_sim(sim_args)
    if walk:
        print(f"Simulated sensor on {port}: walking ({args.gait} gait, weak right hip), with U-turns. "
              "It stands still, then walks; the first steps calibrate.", flush=True)
    else:
        print(f"Simulated sensor on {port}: {args.exercise}, standing on the {args.stance} leg. "
              f"It calibrates (stands still, then bends forward twice), then the reps begin.", flush=True)
    try:
        return run_live(SerialTransport(port), cfg, opts)
    finally:
        end_process(proc, timeout_s=3)
