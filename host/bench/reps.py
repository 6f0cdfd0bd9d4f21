"""Rep detection and cue accuracy over a set of simulated scenarios (`hiplevel bench reps`).

Each scenario runs the simulated sensor (firmware_sim.SimDevice: kinematic model, sensor noise,
mounting, frame loss) in-process straight into the host's decoder and pipeline, so the numbers are
those of the real code path minus the link. The grid varies tempo (1.5-5 s per rep), depth, noise,
stance side, mounting tilt and frame loss, for every exercise (`CASES`; hip swings once per swing).
Scored against the scenario's truth (pelvic tilt: its forward tilt against the target):
- reps counted: a counted rep matches the true rep whose time window its own span (start to end)
  overlaps most, each true rep at most once; a counted rep that overlaps no unmatched true rep is an
  extra rep (a rep detected a few ms before its window opens is still that rep; a double count or a
  rep made of sway is not);
- false cues: reps whose true drop is 1.5 deg or more *below* the threshold that were cued;
- missed cues: reps whose true drop is 1.5 deg or more *past* the threshold that were not cued.
Reps within 1.5 deg of the threshold are not scored for the cue: either answer is acceptable there.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass

import numpy as np

from host.commands.argtypes import integer
from host.processing.exercise import THRESHOLD_DEFAULT_DEG

THRESHOLD_DEG = THRESHOLD_DEFAULT_DEG
TARGET_TILT_DEG = 10.0   # pelvic tilt: the therapist's target, scored like the threshold
TEMPOS_S = (1.5, 2.5, 3.5, 5.0)
# per-rep drops: clearly below, just scorable below, just scorable past, clearly past, ambiguous
HIP_DIP_DROPS = (2.5, 3.5, 6.5, 9.0, 5.0, 3.0, 8.0, 6.5)
SQUAT_DROPS = (0.0, 3.5, 6.5, 9.0, 5.0, 1.0, 8.0, 3.5)
TILTS_DEG = (7.0, 8.5, 11.5, 14.0, 10.0, 7.5, 13.0, 11.5)   # pelvic tilt, around the target


@dataclass(frozen=True)
class Case:
    """One exercise (or variant) of the grid: its scenario, its host settings, its tempos."""
    exercise: str
    drops: tuple = HIP_DIP_DROPS
    tempos: tuple = TEMPOS_S          # seconds per rep; timed hold: seconds per hold
    swing: str = "front-back"

    @property
    def label(self) -> str:
        return f"{self.exercise} ({self.swing})" if self.exercise == "hip-swings" else self.exercise

    @property
    def threshold(self) -> float:
        return TARGET_TILT_DEG if self.exercise == "pelvic-tilt" else THRESHOLD_DEG


CASES = (Case("hip-dip"), Case("single-leg-squat", SQUAT_DROPS), Case("captain-morgan"),
         Case("fire-hydrant", SQUAT_DROPS), Case("hip-swings", SQUAT_DROPS, swing="front-back"),
         Case("hip-swings", SQUAT_DROPS, swing="side"), Case("hip-swings", SQUAT_DROPS, swing="circles"),
         Case("lateral-step-down", SQUAT_DROPS), Case("pelvic-tilt", (0.0,) * 8, (6.0, 8.0, 10.0, 12.0)),
         Case("timed-hold", HIP_DIP_DROPS, (6.0, 8.0, 10.0, 12.0)))
CASE_BY_LABEL = {c.label: c for c in CASES}
HOLD_REST_S = 4.0


@dataclass
class Result:
    exercise: str
    tempo_s: float
    loss: float
    stance: str
    noise: float
    yaw_deg: float
    tilt_deg: float
    true_reps: int
    counted: int
    extra: int
    false_cues: int
    missed_cues: int
    scored_below: int
    scored_past: int


def _scenario_and_config(case: Case, tempo_s: float, stance: str, host_threshold_deg: float):
    from firmware_sim.motion import Scenario
    from host.processing.exercise import ExerciseConfig
    sc_kw, ex_kw = {}, {}
    if case.exercise == "timed-hold":
        sc_kw = ex_kw = dict(hold_s=tempo_s, rest_s=HOLD_REST_S)
    elif case.exercise == "pelvic-tilt":
        sc_kw, ex_kw = dict(tilt_deg=list(TILTS_DEG)), dict(target_deg=TARGET_TILT_DEG)
    sc = Scenario(exercise=case.exercise, stance=stance, drops_deg=list(case.drops), rep_s=tempo_s,
                  swing=case.swing, **sc_kw)
    if case.exercise == "pelvic-tilt":
        ex_kw["target_deg"] = host_threshold_deg * TARGET_TILT_DEG / THRESHOLD_DEG
        host_threshold_deg = THRESHOLD_DEG
    cfg = ExerciseConfig(exercise=case.exercise, stance=stance, threshold_left_deg=host_threshold_deg,
                         threshold_right_deg=host_threshold_deg, swing=case.swing, **ex_kw)
    return sc, cfg


def run_scenario(exercise, tempo_s, loss, stance, noise, yaw_deg, tilt_deg, seed,
                 host_threshold_deg=THRESHOLD_DEG) -> Result:
    """One simulated set through the host pipeline, scored against truth. `exercise` is a case
    label (an exercise, or `hip-swings (side)` and the like). `host_threshold_deg` differs from
    THRESHOLD_DEG only to check that the scoring catches a wrong cue (pelvic tilt: the target is
    scaled alike)."""
    from firmware_sim.device import SimDevice
    from host.processing.exercise import drop_deg
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import SampleDecoder

    case = CASE_BY_LABEL[exercise]
    sc, cfg = _scenario_and_config(case, tempo_s, stance, host_threshold_deg)
    dev = SimDevice(sc, seed=seed, noise=noise, mount_yaw_deg=yaw_deg, mount_tilt_deg=tilt_deg, loss=loss)
    dev.streaming = True
    frames = [dev.info_frame()] + dev.frames_due(sc.duration_s + 1.0)
    events = []
    pipe = Pipeline(PipelineConfig(exercise=cfg), emit=events.append)
    dec = SampleDecoder()
    for frame in frames:
        pipe.feed_frame(dec, frame)
    pipe.end_set()

    # truth: each rep's window in host event time (device seconds since the first sample) and what
    # the cue watches at its most (the free side's drop, sway included; pelvic tilt: forward tilt)
    t_fine = np.arange(0.0, sc.duration_s, 0.002)
    obl, lean, _ = sc.angles_deg(t_fine)
    watched = lean if case.exercise == "pelvic-tilt" else drop_deg(obl, sc.free_side)
    reps_idx = sc.rep_index(t_fine)
    n = sc.reps
    rep_start = np.array([sc.reps_start_s + i * sc.rep_s for i in range(n)])
    true_max = [float(watched[reps_idx == i].max()) for i in range(n)]
    # (a timed hold is clocked by the app from its calibration: it may begin a little before the
    # simulated patient lifts the foot, which the overlap allows)
    clock = 1.0 + dev.clock_ppm * 1e-6  # device seconds per true second
    counted = [e for e in events if e["event"] == "rep"]
    matched = {}
    extra = 0
    for rep in counted:
        start_true = (rep["t"] - rep["duration_s"]) / clock
        end_true = rep["t"] / clock
        overlap = np.minimum(end_true, rep_start + sc.rep_s) - np.maximum(start_true, rep_start)
        overlap[list(matched)] = 0.0
        i = int(np.argmax(overlap))
        if overlap[i] > 0.0:
            matched[i] = rep
        else:
            extra += 1
    false_cues = missed = below = past = 0
    thr = case.threshold
    for i, m in enumerate(true_max):
        rep = matched.get(i)
        if m <= thr - 1.5:
            below += 1
            false_cues += bool(rep and rep["cued"])
        elif m >= thr + 1.5:
            past += 1
            missed += not (rep and rep["cued"])
    return Result(exercise, tempo_s, loss, stance, noise, yaw_deg, tilt_deg, n, len(matched), extra,
                  false_cues, missed, below, past)


MOUNTINGS = ((0.0, 0.0), (45.0, 10.0), (-80.0, 20.0))  # (yaw toward the left side, tilt), degrees


def grid(quick: bool, labels=None):
    mountings = MOUNTINGS[1:] if quick else MOUNTINGS
    k = 0
    for case in CASES:
        if labels and case.label not in labels:
            continue
        tempos = (case.tempos[0], case.tempos[-1]) if quick else case.tempos
        for tempo, loss, stance, noise, (yaw, tilt) in itertools.product(
                tempos, (0.0, 0.05), ("left", "right"), (1.0,) if quick else (1.0, 3.0), mountings):
            yield dict(exercise=case.label, tempo_s=tempo, loss=loss, stance=stance, noise=noise,
                       yaw_deg=yaw, tilt_deg=tilt, seed=k)
            k += 1


def _run_one(scenario: dict) -> Result:
    return run_scenario(**scenario)   # a module-level function: the process pool pickles it by name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a smaller grid (for tests)")
    p.add_argument("--exercise", action="append", choices=list(CASE_BY_LABEL), metavar="NAME",
                   help="only this exercise (repeatable; hip swings as e.g. 'hip-swings (side)')")
    p.add_argument("--json", action="store_true", help="print the per-scenario results as JSON")
    p.add_argument("--jobs", type=integer(1, 64), default=1, metavar="N",
                   help="run the sets in N processes (default 1; each set is independent and seeded, "
                        "so the results do not depend on N)")
    p.add_argument("--write-docs", metavar="PATH", help="write the table into this Markdown file "
                                                        "(replaces its '## Rep detection' section)")


def table(results: list[Result]) -> str:
    rows = ["| exercise | frame loss | scenarios | reps counted | extra reps | false cues (≤ thr−1.5°) | missed cues (≥ thr+1.5°) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for exercise, loss in itertools.product(CASE_BY_LABEL, (0.0, 0.05)):
        rs = [r for r in results if r.exercise == exercise and r.loss == loss]
        if not rs:
            continue
        true = sum(r.true_reps for r in rs)
        counted = sum(r.counted for r in rs)
        rows.append(f"| {exercise} | {loss:.0%} | {len(rs)} | {counted}/{true} ({counted / true:.1%}) | "
                    f"{sum(r.extra for r in rs)} | {sum(r.false_cues for r in rs)}/{sum(r.scored_below for r in rs)} | "
                    f"{sum(r.missed_cues for r in rs)}/{sum(r.scored_past for r in rs)} |")
    rows.append("")
    rows.append("By tempo (all exercises but pelvic tilt and timed hold, both loss levels): " + ", ".join(
        f"{t:g} s/rep {sum(r.counted for r in results if r.tempo_s == t)}/"
        f"{sum(r.true_reps for r in results if r.tempo_s == t)}"
        for t in sorted({r.tempo_s for r in results if r.exercise not in ("pelvic-tilt", "timed-hold")})))
    return "\n".join(rows)


def run(args) -> int:
    from host.bench.docs import replace_section
    scenarios = list(grid(args.quick, args.exercise))
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run_one, scenarios, chunksize=4))
    else:
        results = [_run_one(s) for s in scenarios]
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=1))
    else:
        print(table(results))
    if args.write_docs:
        cmd = "hiplevel bench reps" + (" --quick" if args.quick else "")
        replace_section(args.write_docs, "Rep detection", (
            f"`{cmd}` — {len(results)} simulated sets of 8 reps: every exercise "
            f"({', '.join(CASE_BY_LABEL)}) × tempo (seconds per rep: {', '.join(f'{t:g}' for t in TEMPOS_S)}; "
            f"pelvic tilt 6-12 s per rep; timed hold: holds of 6-12 s with {HOLD_REST_S:g} s rest) "
            f"× stance left/right × noise ×1/×3 × mounting (yaw, tilt) "
            f"{', '.join(f'({y:g}°, {t:g}°)' for y, t in MOUNTINGS)} × frame loss 0/5%; threshold "
            f"{THRESHOLD_DEG:g}° (pelvic tilt: target {TARGET_TILT_DEG:g}° of forward tilt); guided "
            f"calibration (two bends) first. Drops per rep: hip dip, Captain Morgan and timed hold "
            f"{HIP_DIP_DROPS}, the others {SQUAT_DROPS} (°, plus natural sway); pelvic tilt "
            f"{TILTS_DEG} (° forward). A cue is scored only where the truth is 1.5° or more from the "
            f"threshold (or target).\n\n" + table(results)))
    clean = [r for r in results if r.loss == 0.0]
    lossy = [r for r in results if r.loss > 0.0]
    ok = (all(r.counted == r.true_reps and r.extra == 0 for r in clean)
          and sum(r.counted for r in lossy) >= 0.95 * sum(r.true_reps for r in lossy)
          and sum(r.false_cues + r.missed_cues for r in results) == 0)
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1
