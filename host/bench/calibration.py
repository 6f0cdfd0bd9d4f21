"""Mounting calibration and timing against simulator truth, over a grid of mountings, tempos, noise.

Each run is in-process and faster than real time: the simulated sensor (firmware_sim.device) encodes
frames exactly as over a link, they pass (minus any simulated loss) with a modelled host arrival
time through the real SampleDecoder, ClockMap and Pipeline (estimator -> guided bend calibration ->
angles), and the per-sample angles are compared with the simulator's truth by sequence number.
Out: a table on stdout (Markdown) and optionally the same into a docs file (`--write-docs`).

`simulate()` is also what tests/test_calibration.py and tests/test_timing.py call.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

GRID_YAW_DEG = (-90, -45, 0, 30, 90)
GRID_TILT_DEG = (0, 10, 20)
GRID_REP_S = (2.5, 4.0)        # fast and slow single-leg squats
GRID_NOISE = (0.0, 1.0, 2.0)   # sensor error scale: ideal, typical MEMS, twice typical


@dataclass
class SimRun:
    events: list
    seq: np.ndarray            # per sample with an angle (after calibration)
    obliquity_deg: np.ndarray
    forward_tilt_deg: np.ndarray
    true_obliquity_deg: np.ndarray
    true_forward_tilt_deg: np.ndarray
    true_phase: np.ndarray
    t_device_s: np.ndarray
    clock_drift_ppm: float
    expected_drift_ppm: float
    lost_samples: int
    pipeline: object = field(repr=False, default=None)

    def events_of(self, kind: str) -> list:
        return [e for e in self.events if e["event"] == kind]

    @property
    def calibrated(self) -> dict | None:
        cal = self.events_of("calibrated")
        return cal[0] if cal else None

    def rmse(self, what: str = "obliquity", phases=("rep", "end")) -> float:
        keep = np.isin(self.true_phase, phases)
        est, true = ((self.obliquity_deg, self.true_obliquity_deg) if what == "obliquity"
                     else (self.forward_tilt_deg, self.true_forward_tilt_deg))
        err = est[keep] - true[keep]
        return float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")


def simulate(scenario, *, calibration: str = "bends", exercise: str | None = None, rate_hz: int = 200,
             seed: int = 0, mount_yaw_deg: float = 0.0, mount_tilt_deg: float | None = None,
             noise: float = 1.0, loss: float = 0.0, clock_ppm: float | None = 0.0, speed: float = 1.0,
             delay_s: float = 0.002, jitter_s: float = 0.003, poll_s: float = 0.01, gyr_bias_dps=None,
             stance: str | None = None) -> SimRun:
    """One scenario through simulated sensor -> decoder -> clock map -> pipeline. Host arrival of a
    frame = the (irregular) poll after its last sample was taken, scaled by `speed` as the pty link
    does, plus a fixed delay and exponential jitter."""
    from firmware_sim.device import SimDevice
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import SampleDecoder
    from host.processing.timing import ClockMap

    dev = SimDevice(scenario, rate_hz=rate_hz, seed=seed, clock_ppm=clock_ppm, mount_yaw_deg=mount_yaw_deg,
                    mount_tilt_deg=mount_tilt_deg, noise=noise, loss=loss)
    if gyr_bias_dps is not None:
        dev.gyr_bias_dps = np.asarray(gyr_bias_dps, float)
    dev.streaming = True
    ex = exercise or ("single-leg-squat" if scenario.exercise == "single-leg-squat" else "hip-dip")
    events, angles = [], []
    pipe = Pipeline(PipelineConfig(exercise=ExerciseConfig(exercise=ex, stance=stance or scenario.stance),
                                   calibration=calibration),
                    emit=events.append, trace=lambda *row: angles.append(row))
    dec, clock = SampleDecoder(), ClockMap()
    rng = np.random.default_rng(seed + 1000)
    dec.feed(dev.info_frame(), 0.0)
    pipe.on_info(dec.info)
    t_true, t_poll = 0.0, 0.0
    while not dev.finished:
        t_true += 0.5  # frames in bulk (cheaper); each gets its own arrival time below
        for frame in dev.frames_due(t_true):
            batch = dec.feed(frame, 0.0)
            if batch is None:
                continue
            # The link hands a frame over at the first poll after its last sample; polls come every
            # poll_s give or take half of it (a scheduler is not a metronome).
            t_last = float(dev._true_time_s(batch.t_device_us[-1]))
            while t_poll < t_last:
                t_poll += poll_s * rng.uniform(0.5, 1.5)
            batch.t_host_s = t_poll / speed + delay_s + rng.exponential(jitter_s)
            clock.add(batch.t_device_us[-1] * 1e-6, batch.t_host_s)
            pipe.process(batch)
    if angles:
        seq, t_us, obl, fwd = (np.array(c) for c in zip(*angles))
    else:
        seq = t_us = obl = fwd = np.zeros(0)
    t = dev._true_time_s(t_us)
    true_obl, _, _ = scenario.angles_deg(t)
    R, _ = scenario.pelvis(t)
    true_fwd = -np.degrees(np.arcsin(np.clip(R[:, 2, 0], -1, 1)))  # as the truth CSV
    ppm = dev.clock_ppm
    return SimRun(events, seq, obl, fwd, true_obl, true_fwd, scenario.phase_names(t), t_us * 1e-6,
                  clock.drift_ppm, (speed * (1 + ppm * 1e-6) - 1) * 1e6, pipe.lost_samples, pipe)


def squat_scenario(rep_s: float = 3.5, reps: int = 4, lean_deg: float = 30.0, **kw):
    from firmware_sim.motion import Scenario
    return Scenario(exercise="single-leg-squat", drops_deg=[3.0, 8.0, 4.0, 9.0][:reps] * (reps // 4 + 1),
                    rep_s=rep_s, lean_deg=lean_deg, **kw)


def run_grid(yaws=GRID_YAW_DEG, tilts=GRID_TILT_DEG, rep_ss=GRID_REP_S, noises=GRID_NOISE, reps: int = 4,
             calibration: str = "bends", loss: float = 0.0):
    """One squat run (30° lean) per grid point, seeds differing per point. Yields (point, SimRun)."""
    for k, (yaw, tilt, rep_s, noise) in enumerate(itertools.product(yaws, tilts, rep_ss, noises)):
        run = simulate(squat_scenario(rep_s=rep_s, reps=reps), calibration=calibration, seed=100 + k,
                       mount_yaw_deg=yaw, mount_tilt_deg=tilt, noise=noise, loss=loss)
        yield {"yaw": yaw, "tilt": tilt, "rep_s": rep_s, "noise": noise}, run


def gap_jump_error_deg(run: SimRun) -> float:
    """Largest difference, across a gap in the samples, between the change of the estimated and the
    true obliquity: how much the angle jumps because frames were lost (0 when there is no gap)."""
    gaps = np.nonzero(np.diff(run.seq) > 1)[0]
    if not gaps.size:
        return 0.0
    return float(np.max(np.abs(np.diff(run.obliquity_deg)[gaps] - np.diff(run.true_obliquity_deg)[gaps])))


def drift_run(clock_ppm: float, seconds: float = 60.0, seed: int = 0) -> SimRun:
    """Standing still with small sway for `seconds` at real-time speed: how well ClockMap tracks."""
    from firmware_sim.motion import Scenario
    reps = max(1, int((seconds - 4.0) / 4.0))
    sc = Scenario(exercise="stand", drops_deg=[0.0] * reps, rep_s=4.0, calibration_bends=0)
    return simulate(sc, calibration="standing", clock_ppm=clock_ppm, seed=seed)


def _fmt(v, digits=3):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def grid_section(quick: bool = False) -> list[str]:
    yaws, tilts = GRID_YAW_DEG, GRID_TILT_DEG
    rep_ss, noises = (GRID_REP_S[:1], GRID_NOISE[1:2]) if quick else (GRID_REP_S, GRID_NOISE)
    by_mount: dict = {}
    worst = (-1.0, None)
    for point, r in run_grid(yaws, tilts, rep_ss, noises):
        cal = r.calibrated
        rmse = r.rmse("obliquity") if cal else math.inf
        by_mount.setdefault((point["yaw"], point["tilt"]), []).append((r, cal))
        if rmse > worst[0]:
            worst = (rmse, point)
    lines = [f"Single-leg squat with 30° forward lean, 4 reps, guided bend calibration; per mounting "
             f"{len(rep_ss) * len(noises)} runs (rep {'/'.join(f'{x:g}' for x in rep_ss)} s × sensor "
             f"noise {'/'.join(f'{x:g}' for x in noises)}; 1 = typical MEMS errors incl. gyro bias "
             "σ 0.5°/s, 2 = twice that). RMSE over the reps against the simulator's truth.", "",
             "| yaw ° | tilt ° | calibrated | obliquity RMSE ° max | mean | forward tilt RMSE ° max "
             "| bend agreement ° max | yaw found ° |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (yaw, tilt), runs in by_mount.items():
        ok = [(r, c) for r, c in runs if c]
        obl = [r.rmse("obliquity") for r, _ in ok]
        lines.append(
            f"| {yaw} | {tilt} | {len(ok)}/{len(runs)} | {_fmt(max(obl, default=None))} | "
            f"{_fmt(statistics.mean(obl) if obl else None)} | "
            f"{_fmt(max((r.rmse('forward') for r, _ in ok), default=None))} | "
            f"{_fmt(max((c['bend_agreement_deg'] for _, c in ok), default=None), 2)} | "
            f"{_fmt(statistics.mean(c['mounting_yaw_deg'] for _, c in ok) if ok else None, 1)} |")
    w = worst[1]
    lines += ["", f"Worst obliquity RMSE: {worst[0]:.3f}° (yaw {w['yaw']}°, tilt {w['tilt']}°, rep "
              f"{w['rep_s']:g} s, noise {w['noise']:g})."]
    return lines


def _table_head(intro: str, columns: list[str]) -> list[str]:
    """A Markdown table's introduction, header and rule."""
    return [intro, "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def loss_section() -> list[str]:
    lines = _table_head("5 % of frames lost at random (4 samples per frame), typical noise, rep 2.5 s, every "
                        "mounting of the grid:",
                        ["yaw °", "tilt °", "lost samples", "obliquity RMSE °", "largest jump at a gap °"])
    for point, r in run_grid(rep_ss=GRID_REP_S[:1], noises=(1.0,), loss=0.05):
        lines.append(f"| {point['yaw']} | {point['tilt']} | {r.lost_samples} | "
                     f"{_fmt(r.rmse() if r.calibrated else None)} | {gap_jump_error_deg(r):.3f} |")
    return lines


def clock_section() -> list[str]:
    lines = _table_head("Device clock error tracked by `host.processing.timing.ClockMap` after 20 s and 60 s at "
                        "real-time pace (arrivals polled every 5-15 ms, plus 2 ms and an exponential 3 ms delay):",
                        ["device clock ppm", "found after 20 s", "after 60 s", "error after 60 s ppm"])
    for ppm in (-1000.0, -100.0, 0.0, 100.0, 1000.0):
        short, long = drift_run(ppm, 20.0), drift_run(ppm, 60.0)
        lines.append(f"| {ppm:+.0f} | {short.clock_drift_ppm:+.1f} | {long.clock_drift_ppm:+.1f} | "
                     f"{long.clock_drift_ppm - ppm:+.1f} |")
    return lines


def standing_section() -> list[str]:
    lines = ["Standing-only calibration (`--calibration standing`, belt assumed square) against the "
             "bend calibration, squat with 30° lean, tilt 10°:", "",
             "| belt yaw ° | standing: obliquity RMSE ° | bends: obliquity RMSE ° |", "| --- | --- | --- |"]
    for yaw in (0, 10, 30, 90):
        st = simulate(squat_scenario(calibration_bends=0), calibration="standing", mount_yaw_deg=yaw,
                      mount_tilt_deg=10, seed=3)
        bd = simulate(squat_scenario(), calibration="bends", mount_yaw_deg=yaw, mount_tilt_deg=10, seed=3)
        lines.append(f"| {yaw} | {_fmt(st.rmse())} | {_fmt(bd.rmse())} |")
    return lines


BEGIN_MARK = "<!-- BEGIN generated by `hiplevel bench calibration --write-docs`; do not edit by hand -->"
END_MARK = "<!-- END generated -->"


def write_docs(path: str, section: str) -> None:
    """Replace the generated part of `path` (between the marks) or append it."""
    try:
        old = open(path).read()
    except FileNotFoundError:
        old = ""
    block = f"{BEGIN_MARK}\n{section}\n{END_MARK}"
    if BEGIN_MARK in old and END_MARK in old:
        head, rest = old.split(BEGIN_MARK, 1)
        new = head + block + rest.split(END_MARK, 1)[1]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="one tempo and one noise level per mounting instead of the full grid")
    p.add_argument("--write-docs", metavar="PATH",
                   help="also write the tables into PATH between generated-section marks")


def run(args) -> int:
    import datetime
    import platform
    import sys
    t0 = time.perf_counter()
    parts = [("Mountings × tempo × noise", grid_section(args.quick)), ("Lost frames", loss_section()),
             ("Device clock drift", clock_section()), ("Standing-only calibration", standing_section())]
    cmd = "hiplevel bench calibration" + (" --quick" if args.quick else "")
    text = "\n".join([f"Measured {datetime.date.today()} with `{cmd}` (Python {platform.python_version()}, "
                      f"{time.perf_counter() - t0:.0f} s)."] +
                     [line for title, lines in parts for line in ("", f"### {title}", "", *lines)])
    print(text)
    sys.stdout.flush()
    if args.write_docs:
        write_docs(args.write_docs, text)
    return 0
