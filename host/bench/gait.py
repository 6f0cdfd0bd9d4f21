"""`hiplevel bench gait DIR`: the live step detector against reference initial contacts.

In: a folder of `.npz` walking trials in the compact IPOL format (keys `rate_hz`, `acc_mps2` (N,3),
`gyr_rads` (N,3), `ic_s`, `ic_side`, `walk_s`, optional `turn_s`; see docs/gait.md). Each trial is
fed sample by sample, in 4-sample batches as a sensor's frames would come, through the same
host.processing.pipeline.Pipeline `hiplevel run --exercise walk` uses (estimator, walking
calibration, step detector). Out: per trial and overall precision, recall and F1 of the detected
initial contacts (a detection matches a reference contact of the same foot within 0.1 s), F1 with
any foot (what the published anchors score), the median timing error, the share of time-matched
contacts given the right foot, the detection delay (when the detector knew the contact minus when it
happened), printed as a table, as one JSON object (`--json`) and into docs (`--write-docs`).

Scoring covers the straight walking periods (`walk_s`): contacts in U-turns are not steps for
hiplevel; detections inside `turn_s` are only counted. A file that cannot be read is skipped with
its reason.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

G_MS2 = 9.80665
TOLERANCE_S = 0.1
REQUIRED = ("rate_hz", "acc_mps2", "gyr_rads", "ic_s", "ic_side", "walk_s")


class BadTrial(Exception):
    pass


@dataclass
class Trial:
    name: str
    rate_hz: float
    acc_mps2: np.ndarray
    gyr_rads: np.ndarray
    ic_s: np.ndarray
    ic_side: np.ndarray
    walk_s: np.ndarray
    turn_s: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def load_trial(path: Path) -> Trial:
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in REQUIRED if k not in d.files]
            if missing:
                raise BadTrial(f"missing key(s) {', '.join(missing)}")
            t = Trial(path.stem, float(d["rate_hz"]), np.asarray(d["acc_mps2"], float),
                      np.asarray(d["gyr_rads"], float), np.asarray(d["ic_s"], float),
                      np.asarray(d["ic_side"]).astype(str), np.asarray(d["walk_s"], float).reshape(-1, 2),
                      np.asarray(d["turn_s"], float).reshape(-1, 2) if "turn_s" in d.files else np.zeros((0, 2)))
    except BadTrial:
        raise
    except Exception as e:  # a damaged archive: zipfile, pickle and value errors alike
        raise BadTrial(f"cannot read it ({type(e).__name__}: {e})")
    if not 10 <= t.rate_hz <= 2000:
        raise BadTrial(f"rate_hz {t.rate_hz:g} is not a plausible sampling rate")
    if t.acc_mps2.ndim != 2 or t.acc_mps2.shape[1] != 3 or t.gyr_rads.shape != t.acc_mps2.shape:
        raise BadTrial(f"acc_mps2 {t.acc_mps2.shape} and gyr_rads {t.gyr_rads.shape} must both be (N, 3)")
    if len(t.ic_s) != len(t.ic_side) or not set(t.ic_side) <= {"left", "right"}:
        raise BadTrial("ic_s and ic_side must have the same length, ic_side only 'left'/'right'")
    if not np.isfinite(t.acc_mps2).all() or not np.isfinite(t.gyr_rads).all():
        raise BadTrial("the IMU data holds NaN or infinite values")
    return t


def run_live(trial: Trial):
    """The trial through the live pipeline; returns (events, contacts)."""
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import InfoFrame, SampleBatch

    events = []
    pipe = Pipeline(PipelineConfig(exercise=ExerciseConfig(exercise="walk"), calibration="walk"),
                    emit=events.append)
    rate = trial.rate_hz
    pipe.on_info(InfoFrame(int(round(rate)), 16, 2000, 16 / 32768, 2000 / 32768, (0, 0, 0), 4))
    n = len(trial.acc_mps2)
    t_us = np.round(np.arange(n) * 1e6 / rate).astype(np.int64)
    acc_g = trial.acc_mps2 / G_MS2
    gyr_dps = np.degrees(trial.gyr_rads)
    for i in range(0, n, 4):
        pipe.process(SampleBatch(i, t_us[i:i + 4], acc_g[i:i + 4], gyr_dps[i:i + 4], 0.0))
    pipe.end_set()
    det = pipe.exercise.detector
    return events, (det.contacts if det is not None else [])


def _inside(t: float, periods: np.ndarray) -> bool:
    return any(a <= t <= b for a, b in periods)


def _match(det: list[tuple[float, str]], ref: list[tuple[float, str]], same_foot: bool):
    """Greedy one-to-one matching, closest pairs first, within TOLERANCE_S. Returns [(i_det, i_ref)]."""
    pairs = sorted((abs(td - tr), i, j) for i, (td, fd) in enumerate(det) for j, (tr, fr) in enumerate(ref)
                   if abs(td - tr) <= TOLERANCE_S and (not same_foot or fd == fr))
    used_d, used_r, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            out.append((i, j))
    return out


def score_trial(trial: Trial) -> dict:
    t0 = time.perf_counter()
    events, contacts = run_live(trial)
    cal = next((e for e in events if e["event"] == "calibrated"), None)
    fails = [e["reason"] for e in events if e["event"] == "calibration_failed"]
    ref = [(float(t), str(s)) for t, s in zip(trial.ic_s, trial.ic_side) if _inside(t, trial.walk_s)]
    det_all = [(c.t_s, c.foot) for c in contacts]
    det = [d for d in det_all if _inside(d[0], trial.walk_s)]
    known = [c.t_known_s - c.t_s for c in contacts if _inside(c.t_s, trial.walk_s)]
    same = _match(det, ref, same_foot=True)
    anyf = _match(det, ref, same_foot=False)
    errs = [abs(det[i][0] - ref[j][0]) for i, j in anyf]
    right_foot = [det[i][1] == ref[j][1] for i, j in anyf]
    delays = [known[i] for i, _ in anyf]
    t_cal = cal["t"] if cal else float("inf")
    live_delays = [known[i] for i, _ in anyf if det[i][0] > t_cal]  # after the calibration's catch-up
    steps = [e for e in events if e["event"] == "step"]
    return {"trial": trial.name, "reference": len(ref), "detected": len(det), "matched": len(same),
            "matched_any_foot": len(anyf), "right_foot": sum(right_foot),
            "timing_errors_s": errs, "delays_s": delays, "live_delays_s": live_delays,
            "turn_contacts": sum(1 for d in det_all if _inside(d[0], trial.turn_s)),
            "steps": len(steps), "turn_steps": next((e["turn_steps"] for e in events
                                                     if e["event"] == "walk_summary"), 0),
            "calibration": (cal["quality"] if cal else "failed: " + (", ".join(sorted(set(fails))) or "never finished")),
            "calibrated_at_s": round(cal["t"], 2) if cal else None,
            "first_walk_s": round(float(trial.walk_s[0][0]), 2) if len(trial.walk_s) else None,
            "seconds": round(time.perf_counter() - t0, 2), "samples": len(trial.acc_mps2)}


def _prf(tp: int, n_det: int, n_ref: int) -> tuple[float, float, float]:
    p = tp / n_det if n_det else 0.0
    r = tp / n_ref if n_ref else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _finish_row(row: dict) -> dict:
    p, r, f1 = _prf(row["matched"], row["detected"], row["reference"])
    _, _, f1a = _prf(row["matched_any_foot"], row["detected"], row["reference"])
    errs, delays, live = row.pop("timing_errors_s"), row.pop("delays_s"), row.pop("live_delays_s")
    row.update(precision=round(p, 4), recall=round(r, 4), f1=round(f1, 4), f1_any_foot=round(f1a, 4),
               median_timing_error_s=round(statistics.median(errs), 4) if errs else None,
               right_foot_share=round(row["right_foot"] / row["matched_any_foot"], 4) if row["matched_any_foot"] else None,
               median_delay_s=round(statistics.median(delays), 3) if delays else None)
    return row, errs, delays, live


def evaluate(folder: Path) -> dict:
    files = sorted(folder.glob("*.npz"))
    rows, skipped, all_errs, all_delays, all_live = [], [], [], [], []
    for path in files:
        try:
            trial = load_trial(path)
        except BadTrial as e:
            skipped.append({"name": path.stem, "reason": str(e)})
            print(f"skipped {path.stem}: {e}", file=sys.stderr)
            continue
        row, errs, delays, live = _finish_row(score_trial(trial))
        rows.append(row)
        all_errs += errs
        all_delays += delays
        all_live += live
    tot = {k: sum(r[k] for r in rows) for k in ("reference", "detected", "matched", "matched_any_foot",
                                                "right_foot", "turn_contacts", "steps", "turn_steps", "samples")}
    p, r, f1 = _prf(tot["matched"], tot["detected"], tot["reference"])
    _, _, f1a = _prf(tot["matched_any_foot"], tot["detected"], tot["reference"])
    seconds = sum(r_["seconds"] for r_ in rows)
    return {"folder": str(folder), "trials": len(rows), "skipped": skipped,
            "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "f1_any_foot": round(f1a, 4),
            "right_foot_share": round(tot["right_foot"] / tot["matched_any_foot"], 4) if tot["matched_any_foot"] else None,
            "median_timing_error_s": round(statistics.median(all_errs), 4) if all_errs else None,
            "median_delay_s": round(statistics.median(all_delays), 3) if all_delays else None,
            "p95_delay_s": round(float(np.percentile(all_delays, 95)), 3) if all_delays else None,
            # contacts after the walking calibration (before it, they are known when it finishes)
            "median_live_delay_s": round(statistics.median(all_live), 3) if all_live else None,
            "max_live_delay_s": round(max(all_live), 3) if all_live else None,
            "calibrated_trials": sum(1 for r_ in rows if not r_["calibration"].startswith("failed")),
            "us_per_sample": round(1e6 * seconds / tot["samples"], 1) if tot["samples"] else None,
            **{k: tot[k] for k in tot}, "rows": rows}


def table(out: dict, per_trial: bool = True) -> str:
    f = lambda v, fmt: "–" if v is None else format(v, fmt)
    lines = ["| | trials | reference contacts | detected | precision (same foot) | recall (same foot) | F1 (same foot) | F1 (any foot) "
             "| right foot | median timing error s | median delay s | p95 delay s | delay after calibration s (median, max) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| **all** | {out['trials']} | {out['reference']} | {out['detected']} | {out['precision']:.3f} | "
             f"{out['recall']:.3f} | {out['f1']:.3f} | {out['f1_any_foot']:.3f} | "
             f"{f(out['right_foot_share'], '.1%')} | {f(out['median_timing_error_s'], '.3f')} | "
             f"{f(out['median_delay_s'], '.2f')} | {f(out['p95_delay_s'], '.2f')} | "
             f"{f(out['median_live_delay_s'], '.2f')}, {f(out['max_live_delay_s'], '.2f')} |"]
    if per_trial:
        lines += ["", "| trial | calibration | calibrated at s (walk from) | reference | detected | precision | recall "
                      "| F1 | F1 any foot | right foot | timing error s | in turns |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in out["rows"]:
            lines.append(f"| {r['trial']} | {r['calibration']} | {f(r['calibrated_at_s'], '.1f')} "
                         f"({f(r['first_walk_s'], '.1f')}) | {r['reference']} | {r['detected']} | "
                         f"{r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} | {r['f1_any_foot']:.2f} | "
                         f"{f(r['right_foot_share'], '.0%')} | {f(r['median_timing_error_s'], '.3f')} | "
                         f"{r['turn_contacts']} |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", metavar="DIR", help="folder of .npz walking trials (IPOL compact format, docs/gait.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object: overall figures and per-trial rows")
    p.add_argument("--write-docs", metavar="PATH", help="write the tables into this Markdown file "
                                                        "(replaces its '## Live step detection on real walking' section)")


def run(args) -> int:
    from host.cli import UserError
    from host.bench.docs import replace_section
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    if not any(folder.glob("*.npz")):
        raise UserError(f"{folder} holds no .npz trials")
    out = evaluate(folder)
    if args.json:
        print(json.dumps(out))
    else:
        print(table(out))
    if args.write_docs:
        replace_section(args.write_docs, "Live step detection on real walking", (
            f"`hiplevel bench gait {folder.name}`: {out['trials']} trials"
            + (f" ({len(out['skipped'])} skipped)" if out["skipped"] else "") +
            f", each fed sample by sample through the live pipeline (walking calibration, VQF, step "
            f"detector); contacts scored within the straight walks, tolerance {TOLERANCE_S:g} s. "
            f"{out['calibrated_trials']} of {out['trials']} trials calibrated; {out['turn_contacts']} contacts "
            f"detected inside U-turns, {out['turn_steps']} steps flagged as turning; host cost "
            f"{out['us_per_sample']} µs per sample.\n\n" + table(out)), title="# Walking")
    return 0
