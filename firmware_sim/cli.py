"""Run the simulated belt sensor as its own process (`hiplevel sim`).

It prints one line saying where to connect, then behaves like firmware: waits for START, streams a
scripted exercise from a kinematic model of the pelvis with realistic sensor errors, and stops when
the scenario is over. See firmware_sim.device for the truth CSV columns.
"""
from __future__ import annotations

import argparse
import sys

from host.commands.argtypes import loss_fraction, positive

from .device import RATES_HZ, SimDevice
from .motion import EXERCISES, SIDES, Scenario


def _drops(text: str) -> list[float]:
    try:
        drops = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--drops wants degrees separated by commas, e.g. 3,8,4 (got {text!r})")
    if not drops or any(not 0 <= d <= 30 for d in drops):
        raise argparse.ArgumentTypeError("each drop must be between 0 and 30 degrees")
    return drops


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--link", choices=["pty", "ble"], default="pty",
                   help="pty: a serial port (pseudo-terminal); ble: a BLE peripheral on a virtual radio "
                        "served on loopback TCP (default pty)")
    ble = p.add_argument_group("BLE link (--link ble)")
    ble.add_argument("--hci-port", type=int, default=None, metavar="PORT",
                     help="TCP port of the virtual radio (fixed, so a restarted sensor is found again)")
    ble.add_argument("--name", default=None, help="advertised name (default hiplevel-sim-XXXX)")
    ble.add_argument("--dropout-at", type=float, default=None, metavar="S",
                     help="go out of range once at this sensor time, seconds")
    ble.add_argument("--dropout-for", type=float, default=3.0, metavar="S",
                     help="how long the dropout lasts, seconds (default 3)")
    p.add_argument("--exercise", choices=EXERCISES, default="hip-dip")
    p.add_argument("--stance", choices=SIDES, default="left", help="stance leg; the other side drops")
    p.add_argument("--reps", type=int, default=None, help="number of reps (default: one per --drops value, or 5)")
    p.add_argument("--drops", type=_drops, default=None, metavar="D1,D2,...",
                   help="drop of the free side per rep, degrees (repeats cyclically to --reps)")
    p.add_argument("--rep-seconds", type=positive, default=3.5, help="duration of one rep (default 3.5)")
    p.add_argument("--lean", type=float, default=30.0, help="single-leg squat forward lean, degrees")
    p.add_argument("--bends", type=int, default=2, metavar="N",
                   help="slow forward bends after the first still phase, as `hiplevel run` asks for "
                        "to calibrate (default 2; 0 for `hiplevel run --calibration standing`)")
    p.add_argument("--bend-deg", type=float, default=30.0, metavar="DEG",
                   help="how far each calibration bend tips the pelvis forward (default 30)")
    p.add_argument("--rate", type=int, choices=RATES_HZ, default=200, help="sample rate, Hz")
    p.add_argument("--samples-per-frame", type=int, default=4)
    p.add_argument("--speed", type=positive, default=1.0, help="run this many times faster than real time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock-ppm", type=float, default=None, help="device clock error (default: random within ±50)")
    p.add_argument("--mount-yaw", type=float, default=0.0, help="belt turned toward the left side, degrees")
    p.add_argument("--mount-tilt", type=float, default=None, help="sensor tilt on the belt, degrees (default random 2-5)")
    p.add_argument("--loss", type=loss_fraction, default=0.0, help="fraction of frames lost on the link")
    p.add_argument("--corrupt", type=loss_fraction, default=0.0, help="fraction of serial packets with a flipped byte")
    p.add_argument("--no-noise", action="store_true", help="ideal sensor (no noise, no bias)")
    p.add_argument("--truth", metavar="FILE", help="write the true obliquity per sample to this CSV")
    prog = p.add_argument_group("following a programme (firmware_sim/programme.py)")
    prog.add_argument("--programme", metavar="FILE", default=None,
                      help="do the steps of this programme file (TOML), as `hiplevel today` runs them")
    prog.add_argument("--from-step", type=int, default=0, metavar="K", help="start at step K (0 = the first)")
    prog.add_argument("--steps", type=int, default=None, metavar="N", help="do only N steps (an interrupted session)")


def scenario_from_args(args) -> Scenario:
    if getattr(args, "programme", None):
        from .programme import programme_scenario
        try:
            return programme_scenario(args.programme, args.from_step, args.steps, rep_s=args.rep_seconds,
                                      calibration_bends=args.bends)
        except OSError as e:
            raise ValueError(f"cannot read the programme file {args.programme}: {e.strerror}") from None
    drops = args.drops or [6.0]
    reps = args.reps if args.reps is not None else (len(args.drops) if args.drops else 5)
    if reps < 0:
        raise SystemExit("hiplevel sim: --reps must be 0 or more")
    if args.bends < 0:
        raise ValueError("--bends must be 0 or more")
    if not 0 <= args.bend_deg <= 90:
        raise ValueError("--bend-deg must be within 0..90 degrees")
    drops = [drops[i % len(drops)] for i in range(reps)]
    return Scenario(exercise=args.exercise, stance=args.stance, drops_deg=drops,
                    rep_s=args.rep_seconds, lean_deg=args.lean, calibration_bends=args.bends,
                    bend_deg=args.bend_deg)


def run(args) -> int:
    from host.errors import UserError
    if not -90 <= args.mount_yaw <= 90:
        raise UserError("--mount-yaw must be within -90..90 degrees")
    if args.mount_tilt is not None and not 0 <= args.mount_tilt <= 45:
        raise UserError("--mount-tilt must be within 0..45 degrees")
    if not 1 <= args.samples_per_frame <= 255:
        raise UserError("--samples-per-frame must be 1..255")
    try:
        scenario = scenario_from_args(args)
    except ValueError as e:
        raise UserError(str(e))
    truth = None
    if args.truth:
        try:
            truth = open(args.truth, "w", buffering=1 << 16)
        except OSError as e:
            raise UserError(f"cannot write the truth file {args.truth}: {e.strerror}")
    device = SimDevice(scenario, rate_hz=args.rate, samples_per_frame=args.samples_per_frame,
                       seed=args.seed, clock_ppm=args.clock_ppm, mount_yaw_deg=args.mount_yaw,
                       mount_tilt_deg=args.mount_tilt, noise=not args.no_noise, loss=args.loss,
                       truth_file=truth)
    try:
        if args.link == "ble":
            if args.corrupt:
                raise UserError("--corrupt is for the serial link (BLE packets are checked by the radio)")
            from .link_ble import run_ble
            return run_ble(device, speed=args.speed, name=args.name, hci_port=args.hci_port,
                           dropout_at_s=args.dropout_at, dropout_for_s=args.dropout_for)
        from .link_pty import run_pty
        return run_pty(device, speed=args.speed, corrupt=args.corrupt)
    except KeyboardInterrupt:
        return 130
    finally:
        if truth:
            truth.close()
