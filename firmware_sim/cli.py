"""Run the simulated belt sensor as its own process (`hiplevel sim`).

It prints one line saying where to connect, then behaves like firmware: waits for START, streams a
scripted exercise from a kinematic model of the pelvis with realistic sensor errors, and stops when
the scenario is over. See firmware_sim.device for the truth CSV columns.
"""
from __future__ import annotations

import argparse
import sys

from host.commands.argtypes import loss_fraction, number, positive, tcp_port
from host.protocol.frames import SEQ_MODULO

from .device import RATES_HZ, SimDevice
from .firmware import core
from .motion import EXERCISES, SIDES, SWINGS, Scenario

DEFAULT_RATE_HZ = core.DEFAULT_RATE_HZ
from .walking import add_walk_arguments, walk_scenario


def _drops(text: str) -> list[float]:
    try:
        drops = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--drops wants degrees separated by commas, e.g. 3,8,4 (got {text!r})")
    if not drops or any(not 0 <= d <= 30 for d in drops):
        raise argparse.ArgumentTypeError("each drop must be between 0 and 30 degrees")
    return drops


def _clock_jump(text: str) -> tuple[float, float]:
    try:
        at_s, by_s = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--clock-jump wants AT:BY in seconds, e.g. 12:-5 (got {text!r})")
    if not (0 <= at_s < 1e6 and abs(by_s) < 1e6):
        raise argparse.ArgumentTypeError("--clock-jump: AT must be 0 or more, and both below a million seconds")
    return at_s, by_s


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--link", choices=["pty", "ble"], default="pty",
                   help="pty: a serial port (pseudo-terminal); ble: a BLE peripheral on a virtual radio "
                        "served on loopback TCP (default pty)")
    ble = p.add_argument_group("BLE link (--link ble)")
    ble.add_argument("--hci-port", type=tcp_port, default=None, metavar="PORT",
                     help="TCP port of the virtual radio (fixed, so a restarted sensor is found again)")
    ble.add_argument("--name", default=None, help="advertised name (default hiplevel-sim-XXXX)")
    ble.add_argument("--as", dest="as_sensor", choices=["hiplevel", "dot", "movesense"], default="hiplevel",
                     help="speak this sensor's BLE protocol: hiplevel's own (default), a Movella DOT or a "
                          "Movesense with gatt_sensordata_app (docs/sensors.md); prints its address")
    ble.add_argument("--dropout-at", type=number(0.0, what="a sensor time in seconds, 0 or more"), default=None, metavar="S",
                     help="go out of range once at this sensor time, seconds")
    ble.add_argument("--dropout-for", type=positive, default=3.0, metavar="S",
                     help="how long the dropout lasts, seconds (default 3)")
    p.add_argument("--exercise", choices=EXERCISES + ("walk",), default="hip-dip")
    add_walk_arguments(p)
    p.add_argument("--stance", choices=SIDES, default="left", help="stance leg; the other side drops")
    p.add_argument("--reps", type=int, default=None, help="number of reps (default: one per --drops value, or 5)")
    p.add_argument("--drops", type=_drops, default=None, metavar="D1,D2,...",
                   help="drop of the free side per rep, degrees (repeats cyclically to --reps)")
    p.add_argument("--rep-seconds", type=positive, default=3.5, help="duration of one rep (default 3.5)")
    p.add_argument("--lean", type=float, default=30.0, help="single-leg squat forward lean, degrees")
    p.add_argument("--swing", choices=SWINGS, default="front-back", help="hip swings: the free leg's movement")
    p.add_argument("--tilts", type=_drops, default=None, metavar="T1,T2,...",
                   help="pelvic tilt: forward tilt per rep, degrees (default 12; repeats to --reps)")
    p.add_argument("--hold-s", type=positive, default=8.0, help="timed hold: seconds on one leg (default 8)")
    p.add_argument("--rest-s", type=positive, default=4.0, help="timed hold: rest between holds (default 4)")
    p.add_argument("--bends", type=int, default=2, metavar="N",
                   help="slow forward bends after the first still phase, as `hiplevel run` asks for "
                        "to calibrate (default 2; 0 for `hiplevel run --calibration standing`)")
    p.add_argument("--bend-deg", type=float, default=30.0, metavar="DEG",
                   help="how far each calibration bend tips the pelvis forward (default 30)")
    p.add_argument("--rate", type=int, default=None,
                   help=f"the chip's output data rate, Hz: {', '.join(map(str, RATES_HZ))} (default "
                        f"{DEFAULT_RATE_HZ}); --as dot 1-60 (default 60), --as movesense 13-1666 "
                        "(default 104; the host's subscription sets it)")
    p.add_argument("--odr-error", type=float, default=None, metavar="PCT",
                   help="the chip's oscillator error, percent (default: random within ±2.5)")
    p.add_argument("--imu-fault-at", type=float, default=None, metavar="S",
                   help="the motion chip stops answering at this sensor time, seconds (0: never answers)")
    p.add_argument("--samples-per-frame", type=int, default=None,
                   help="samples per frame (default 4; --as dot 1; --as movesense 8 per notification)")
    p.add_argument("--speed", type=positive, default=1.0, help="run this many times faster than real time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock-ppm", type=float, default=None, help="device clock error (default: random within ±50)")
    p.add_argument("--mount-yaw", type=float, default=0.0, help="belt turned toward the left side, degrees")
    p.add_argument("--mount-tilt", type=float, default=None, help="sensor tilt on the belt, degrees (default random 2-5)")
    p.add_argument("--loss", type=loss_fraction, default=0.0, help="fraction of frames lost on the link")
    p.add_argument("--corrupt", type=loss_fraction, default=0.0, help="fraction of serial packets with a flipped byte")
    p.add_argument("--clock-jump", type=_clock_jump, default=None, metavar="AT:BY",
                   help="serial link: the device's time stamps jump once by BY seconds (negative = back) at "
                        "AT seconds into the stream, e.g. 12:-5")
    p.add_argument("--no-noise", action="store_true", help="ideal sensor (no noise, no bias)")
    p.add_argument("--truth", metavar="FILE", help="write the true obliquity per sample to this CSV")
    faults = p.add_argument_group("firmware faults (serial link), for testing the host")
    faults.add_argument("--restart-at", type=positive, default=None, metavar="S",
                        help="reboot once at this true time: numbering and clock start over, streaming resumes")
    faults.add_argument("--seq-jump-at", type=positive, default=None, metavar="S",
                        help="the sample numbering jumps by 2^31 once at this true time (the clock runs on)")
    faults.add_argument("--stall-at", type=positive, default=None, metavar="S",
                        help="the IMU stops at this true time: no more samples, INFO goes on every second")
    prog = p.add_argument_group("following a programme (firmware_sim/programme.py)")
    prog.add_argument("--programme", metavar="FILE", default=None,
                      help="do the steps of this programme file (TOML), as `hiplevel today` runs them")
    prog.add_argument("--from-step", type=int, default=0, metavar="K", help="start at step K (0 = the first)")
    prog.add_argument("--steps", type=int, default=None, metavar="N", help="do only N steps (an interrupted session); "
                      "--exercise walk: the straight steps to walk (default 20)")


def scenario_from_args(args) -> Scenario:
    if args.exercise == "walk":
        return walk_scenario(args)
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
    tilts = args.tilts or [12.0]
    return Scenario(exercise=args.exercise, stance=args.stance, drops_deg=drops,
                    rep_s=args.rep_seconds, lean_deg=args.lean, calibration_bends=args.bends,
                    bend_deg=args.bend_deg, swing=args.swing,
                    tilt_deg=[tilts[i % len(tilts)] for i in range(reps)],
                    hold_s=args.hold_s, rest_s=args.rest_s)


class FaultyDevice:
    """A SimDevice whose firmware misbehaves once at a given true time (see the fault options):
    everything else is delegated to the device, so the link serves it unchanged."""

    def __init__(self, device: SimDevice, restart_at_s=None, seq_jump_at_s=None, stall_at_s=None):
        self._device = device
        self._faults = sorted((t, kind) for t, kind in ((restart_at_s, "restart"), (seq_jump_at_s, "jump"),
                                                        (stall_at_s, "stall")) if t is not None)
        self._stalled = False

    def __getattr__(self, name):
        return getattr(self._device, name)

    def __setattr__(self, name, value):  # the link sets `wall_clock` and `streaming` on the device
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._device, name, value)

    def frames_due(self, t_true_s: float) -> list[bytes]:
        dev, out = self._device, []
        while self._faults and self._faults[0][0] <= t_true_s:
            at_s, kind = self._faults.pop(0)
            out += dev.frames_due(at_s)
            if kind == "stall":
                self._stalled = True
                dev.stall()
            elif kind == "jump":
                out += dev.jump_seq(SEQ_MODULO // 2)
            else:  # reboot: up-time starts again from ~0.3 s (the true-time mapping moves with it)
                out += dev.reboot(up_s=0.3)
        return out + dev.frames_due(t_true_s)

    @property
    def finished(self) -> bool:
        return False if self._stalled else self._device.finished


def run(args) -> int:
    from host.errors import UserError
    if not -90 <= args.mount_yaw <= 90:
        raise UserError("--mount-yaw must be within -90..90 degrees")
    if args.mount_tilt is not None and not 0 <= args.mount_tilt <= 45:
        raise UserError("--mount-tilt must be within 0..45 degrees")
    if args.odr_error is not None and not -10 <= args.odr_error <= 10:
        raise UserError("--odr-error must be within -10..10 percent")
    rate, spf = args.rate or DEFAULT_RATE_HZ, args.samples_per_frame or 4
    third_party = None
    if args.as_sensor != "hiplevel":
        if args.link != "ble":
            raise UserError("--as is for the BLE link (--link ble)")
        if args.restart_at or args.seq_jump_at or args.stall_at or args.imu_fault_at is not None:
            raise UserError("the firmware faults are for hiplevel's own firmware")
        from .link_ble_as import DEFAULTS
        rate0, spf0, rates = DEFAULTS[args.as_sensor]
        third_party = (args.rate or rate0, args.samples_per_frame or spf0)
        if third_party[0] not in rates:
            raise UserError(f"--as {args.as_sensor} streams at {', '.join(map(str, rates))} Hz")
        if args.as_sensor == "dot" and third_party[1] != 1:
            raise UserError("a Movella DOT sends one sample per notification (--samples-per-frame 1)")
        rate, spf = DEFAULT_RATE_HZ, third_party[1]  # the board's own firmware core stays idle
    elif rate not in RATES_HZ:
        raise UserError(f"--rate: the chip runs at {', '.join(map(str, RATES_HZ))} Hz")
    if not 1 <= spf <= 255:
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
    if args.truth and args.exercise == "walk":
        scenario.write_steps_truth(args.truth + ".steps.csv")
    device = SimDevice(scenario, rate_hz=rate, samples_per_frame=spf,
                       seed=args.seed, clock_ppm=args.clock_ppm, mount_yaw_deg=args.mount_yaw,
                       mount_tilt_deg=args.mount_tilt, noise=not args.no_noise, loss=args.loss,
                       truth_file=truth,
                       odr_error=None if args.odr_error is None else args.odr_error / 100.0,
                       imu_fault_at_s=args.imu_fault_at)
    try:
        if args.link == "ble":
            if args.clock_jump:
                raise UserError("--clock-jump is for the serial link")
            if args.corrupt:
                raise UserError("--corrupt is for the serial link (BLE packets are checked by the radio)")
            from .link_ble import run_ble
            return run_ble(device, speed=args.speed, name=args.name, hci_port=args.hci_port,
                           dropout_at_s=args.dropout_at, dropout_for_s=args.dropout_for,
                           kind=args.as_sensor, third_party=third_party)
        if args.dropout_at is not None:
            raise UserError("--dropout-at is for the BLE link (--link ble); a serial cable does not go out of range")
        from .link_pty import run_pty
        if args.restart_at or args.seq_jump_at or args.stall_at:
            device = FaultyDevice(device, args.restart_at, args.seq_jump_at, args.stall_at)
        return run_pty(device, speed=args.speed, corrupt=args.corrupt, clock_jump=args.clock_jump)
    except KeyboardInterrupt:
        return 130
    finally:
        if truth:
            truth.close()
