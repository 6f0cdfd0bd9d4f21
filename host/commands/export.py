"""Export a recorded session as CSV files (`hiplevel export SESSION --csv DIR`).

In: a session from the store (host.store). The raw frames are decoded again (host.protocol.frames) for the
sensor values, and replayed with the block's stored settings (cmd_replay.replay_block, the live
pipeline) for the per-sample angles; reps, cues and other events are the ones recorded live.
Out: four files in DIR, named session-N-*.csv (columns documented in docs/sessions.md):
blocks (settings per block), samples (sensor values and angles per sample), reps, events.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from host import store
from host.cli import UserError
from host.commands.replay import compare_reps, config_for, replay_block
from host.commands.sessions import add_db_argument, get_session, open_db, pick_blocks, plain_db_errors, session_arg
from host.protocol.frames import SampleDecoder

SAMPLE_COLUMNS = ["block", "seq", "t_device_us", "t_s", "t_host_s", "acc_x_g", "acc_y_g", "acc_z_g",
                  "gyr_x_dps", "gyr_y_dps", "gyr_z_dps", "obliquity_deg", "forward_tilt_deg", "cue_on"]
REP_COLUMNS = ["block", "index", "set", "t_s", "low_side", "max_drop_deg", "duration_s", "cued"]
EVENT_COLUMNS = ["block", "t_s", "t_host_s", "event", "details"]
BLOCK_COLUMNS = ["session", "block", "patient", "started_utc", "exercise", "stance", "threshold_left_deg",
                 "threshold_right_deg", "estimator", "status", "frames", "duration_s", "mounting_tilt_deg",
                 "settings"]


def add_arguments(p) -> None:
    session_arg(p)
    p.add_argument("--csv", metavar="DIR", required=True, help="folder for the CSV files (made if missing)")
    p.add_argument("--block", type=int, default=None, metavar="N", help="only block N (default: every block)")
    add_db_argument(p)


def decode_samples(conn, block: store.BlockInfo) -> dict[str, np.ndarray]:
    """Every sample the decoder yields from the stored frames, in physical units."""
    dec = SampleDecoder()
    seq, t_us, t_host, acc, gyr = [], [], [], [], []
    for t_h, frame, _late in store.frames(conn, block.id):
        batch = dec.feed(frame, t_h)
        if batch is None:
            continue
        n = len(batch.t_device_us)
        seq.append(batch.seq + np.arange(n))
        t_us.append(batch.t_device_us)
        t_host.append(np.full(n, t_h))
        acc.append(batch.acc_g)
        gyr.append(batch.gyr_dps)
    if not seq:
        empty = np.zeros(0)
        return {"seq": empty.astype(np.int64), "t_device_us": empty.astype(np.int64), "t_host_s": empty,
                "acc_g": np.zeros((0, 3)), "gyr_dps": np.zeros((0, 3))}
    return {"seq": np.concatenate(seq), "t_device_us": np.concatenate(t_us), "t_host_s": np.concatenate(t_host),
            "acc_g": np.concatenate(acc), "gyr_dps": np.concatenate(gyr)}


def angles_for(samples: dict, traced: dict) -> tuple[np.ndarray, np.ndarray]:
    """Obliquity and forward tilt per decoded sample (NaN before calibration), joined by sequence."""
    n = len(samples["seq"])
    obl, fwd = np.full(n, np.nan), np.full(n, np.nan)
    if traced["seq"] and n:
        row = {int(s): i for i, s in enumerate(samples["seq"])}
        idx = np.array([row.get(int(s), -1) for s in traced["seq"]])
        ok = idx >= 0
        obl[idx[ok]] = np.asarray(traced["obliquity_deg"])[ok]
        fwd[idx[ok]] = np.asarray(traced["forward_tilt_deg"])[ok]
    return obl, fwd


def cue_mask(t_s: np.ndarray, periods: list[tuple[float, float]]) -> np.ndarray:
    on = np.zeros(len(t_s), dtype=bool)
    for start, end in periods:
        on |= (t_s >= start - 1e-6) & (t_s < end - 1e-6)
    return on


def _num(v, fmt="{:.5f}") -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "" if v != v else fmt.format(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


@plain_db_errors
def run(args) -> int:
    out_dir = Path(args.csv)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the folder {out_dir}: {e.strerror}") from None
    conn = open_db(args)
    try:
        session = get_session(conn, args.session)
        blocks = pick_blocks(session, args.block)
        base = out_dir / f"session-{session.id}"
        paths = {k: Path(f"{base}-{k}.csv") for k in ("blocks", "samples", "reps", "events")}
        try:
            files = {k: open(p, "w", newline="") for k, p in paths.items()}
        except OSError as e:
            raise UserError(f"cannot write in {out_dir}: {e.strerror}") from None
        try:
            _export(conn, session, blocks, files)
        except OSError as e:
            raise UserError(f"writing the CSV files in {out_dir} failed: {e.strerror}") from None
        finally:
            for f in files.values():
                f.close()
    finally:
        conn.close()
    for p in paths.values():
        print(p)
    return 0


def _export(conn, session, blocks, files) -> None:
    w = {k: csv.writer(f) for k, f in files.items()}
    w["blocks"].writerow(BLOCK_COLUMNS)
    w["samples"].writerow(SAMPLE_COLUMNS)
    w["events"].writerow(EVENT_COLUMNS)
    all_reps = []
    for b in blocks:
        cal = b.calibration or {}
        w["blocks"].writerow([session.id, b.number, session.patient, b.started_utc, b.exercise, b.stance,
                              b.threshold_left_deg, b.threshold_right_deg, b.estimator, b.status, b.frame_count,
                              f"{b.duration_s:.3f}", _num(cal.get("mounting_tilt_deg")), json.dumps(b.settings)])
        recorded = store.events(conn, b.id)
        rec_events = [e for _, e in recorded]
        live_reps = [e for e in rec_events if e.get("event") in ("rep", "step")]  # step: walking
        all_reps += [(b.number, r) for r in live_reps]
        samples = decode_samples(conn, b)
        n = len(samples["seq"])
        t0 = int(samples["t_device_us"][0]) if n else 0
        t_s = (samples["t_device_us"] - t0) * 1e-6
        obl = fwd = np.full(n, np.nan)
        if b.frame_count:
            r = replay_block(conn, b, config_for(b), speed=None, trace=True)
            obl, fwd = angles_for(samples, r.samples)
            verdict = compare_reps(live_reps, r.reps)
            if verdict.startswith("Differs"):  # e.g. thresholds changed in the window during the set
                print(f"Note (block {b.number}): the angles come from a re-analysis with the stored "
                      f"settings. {verdict}")
        cue = cue_mask(t_s, store.cue_periods(rec_events, float(t_s[-1]) if n else 0.0))
        acc, gyr = samples["acc_g"], samples["gyr_dps"]
        for i in range(n):
            w["samples"].writerow([b.number, int(samples["seq"][i]), int(samples["t_device_us"][i]), f"{t_s[i]:.6f}",
                                   f"{samples['t_host_s'][i]:.6f}",
                                   f"{acc[i, 0]:.6f}", f"{acc[i, 1]:.6f}", f"{acc[i, 2]:.6f}",
                                   f"{gyr[i, 0]:.4f}", f"{gyr[i, 1]:.4f}", f"{gyr[i, 2]:.4f}",
                                   _num(float(obl[i])), _num(float(fwd[i])), int(cue[i])])
        rows = [(t_h, e.get("t"), e.get("event"), {k: v for k, v in e.items() if k not in ("event", "t")})
                for t_h, e in recorded]
        rows += [(m["t_host_s"], m["t_s"], "marker", {"label": m["label"]}) for m in store.markers(conn, b.id)]
        rows.sort(key=lambda r: r[0])
        for t_h, t, kind, details in rows:
            w["events"].writerow([b.number, _num(t, "{:.4f}"), f"{t_h:.6f}", kind, json.dumps(details)])
    # reps: the documented columns first, then whatever else the exercise put into its rep events
    extra = []
    for _, r in all_reps:
        extra += [k for k in r if k not in REP_COLUMNS and k not in ("event", "t") and k not in extra]
    w["reps"].writerow(REP_COLUMNS + extra)
    for block_no, r in all_reps:
        vals = {"block": block_no, "t_s": r.get("t"), **{k: v for k, v in r.items() if k != "t"}}
        if r.get("event") == "step":  # a walking step: its swing side is the low side
            vals.update(low_side=r.get("swing_side"), max_drop_deg=r.get("drop_deg"))
        w["reps"].writerow([_num(vals.get(k), "{:.4f}") for k in REP_COLUMNS + extra])
