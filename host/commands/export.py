"""Export a recorded session as CSV files (`hiplevel export SESSION --csv DIR`).

In: a session from the store (host.store). The raw frames are decoded again (host.protocol.frames) for the
sensor values, and replayed with the block's stored settings (host.session.review, the live
pipeline) for the per-sample angles; reps, cues and other events are the ones recorded live.
Out: four files in DIR, named session-N-*.csv (columns documented in docs/sessions.md):
blocks (settings per block), samples (sensor values and angles per sample), reps, events. They are
written in a temporary folder inside DIR and moved into place only when all four are complete.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from host import store
from host.errors import UserError
from host.commands.db_args import add_db_argument, get_session, open_db, pick_blocks, plain_db_errors, session_arg
from host.protocol.frames import SampleDecoder
from host.session.review import review_block

SAMPLE_COLUMNS = ["block", "seq", "t_device_us", "t_s", "t_host_s", "acc_x_g", "acc_y_g", "acc_z_g",
                  "gyr_x_dps", "gyr_y_dps", "gyr_z_dps", "obliquity_deg", "forward_tilt_deg", "cue_on"]
REP_COLUMNS = ["block", "index", "set", "t_s", "low_side", "max_drop_deg", "duration_s", "cued"]
EVENT_COLUMNS = ["block", "t_s", "t_host_s", "event", "details"]
BLOCK_COLUMNS = ["session", "block", "patient", "started_utc", "exercise", "stance", "threshold_left_deg",
                 "threshold_right_deg", "estimator", "status", "frames", "duration_s", "mounting_tilt_deg",
                 "settings", "threshold_changes"]


def add_arguments(p) -> None:
    session_arg(p)
    p.add_argument("--csv", metavar="DIR", required=True, help="folder for the CSV files (made if missing)")
    p.add_argument("--block", type=int, default=None, metavar="N", help="only block N (default: every block)")
    add_db_argument(p)


def decode_samples(conn, block: store.BlockInfo) -> dict[str, np.ndarray]:
    """Every sample the decoder yields from the stored frames, in physical units."""
    dec = SampleDecoder()
    seq, t_us, t_host, acc, gyr, t_s = [], [], [], [], [], []
    t0_us, end_s = None, 0.0
    for t_h, frame, _late in store.frames(conn, block.id):
        batch = dec.feed(frame, t_h)
        if batch is None:
            continue
        n = len(batch.t_device_us)
        if t0_us is None or batch.restarted:  # as the pipeline does: time runs on across a restart
            t0_us = int(batch.t_device_us[0]) - (int(round((end_s + 1.0 / dec.info.rate_hz) * 1e6))
                                                 if t0_us is not None else 0)
        t_s.append((batch.t_device_us - t0_us) * 1e-6)
        end_s = float(t_s[-1][-1])
        seq.append(batch.seq + np.arange(n))
        t_us.append(batch.t_device_us)
        t_host.append(np.full(n, t_h))
        acc.append(batch.acc_g)
        gyr.append(batch.gyr_dps)
    if not seq:
        empty = np.zeros(0)
        return {"seq": empty.astype(np.int64), "t_device_us": empty.astype(np.int64), "t_host_s": empty,
                "acc_g": np.zeros((0, 3)), "gyr_dps": np.zeros((0, 3)), "t_s": empty}
    return {"seq": np.concatenate(seq), "t_device_us": np.concatenate(t_us), "t_host_s": np.concatenate(t_host),
            "acc_g": np.concatenate(acc), "gyr_dps": np.concatenate(gyr), "t_s": np.concatenate(t_s)}


def angles_for(samples: dict, review) -> tuple[np.ndarray, np.ndarray]:
    """Obliquity and forward tilt per decoded sample (NaN before calibration), joined by sequence
    number and device time (a sensor that restarted numbers from 0 again)."""
    n = len(samples["seq"])
    obl, fwd = np.full(n, np.nan), np.full(n, np.nan)
    if len(review.seq) and n:
        row = {(int(s), int(t)): i for i, (s, t) in enumerate(zip(samples["seq"], samples["t_device_us"]))}
        idx = np.array([row.get((int(s), int(t)), -1) for s, t in zip(review.seq, review.t_device_us)])
        ok = idx >= 0
        obl[idx[ok]] = review.obliquity_deg[ok]
        fwd[idx[ok]] = review.forward_tilt_deg[ok]
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
        names = {k: f"session-{session.id}-{k}.csv" for k in ("blocks", "samples", "reps", "events")}
        # written in a temporary folder beside the target and moved in only when all four are
        # complete: a failure (damaged database, full disk) leaves no partial files and keeps an
        # earlier export of the same session as it was
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".hiplevel-export-", dir=out_dir))
        except OSError as e:
            raise UserError(f"cannot write in {out_dir}: {e.strerror}") from None
        try:
            _export_into(conn, session, blocks, {k: tmp / n for k, n in names.items()}, out_dir)
            for n in names.values():
                os.replace(tmp / n, out_dir / n)
        except OSError as e:
            raise UserError(f"writing the CSV files in {out_dir} failed: {e.strerror}; nothing was "
                            "changed there") from None
        except store.DB_ERRORS as e:
            raise UserError(f"{store.explain(e, args.db or store.default_db_path())}; the export stopped and "
                            f"nothing was changed in {out_dir}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        conn.close()
    for n in names.values():
        print(out_dir / n)
    return 0


def _export_into(conn, session, blocks, paths: dict[str, Path], out_dir: Path) -> None:
    files = {}
    try:
        for k, p in paths.items():
            files[k] = open(p, "w", newline="")
        _export(conn, session, blocks, files)
    finally:
        for f in files.values():
            f.close()


def _export(conn, session, blocks, files) -> None:
    w = {k: csv.writer(f) for k, f in files.items()}
    w["blocks"].writerow(BLOCK_COLUMNS)
    w["samples"].writerow(SAMPLE_COLUMNS)
    w["events"].writerow(EVENT_COLUMNS)
    all_reps = []
    for b in blocks:
        cal = b.calibration or {}
        recorded = store.events(conn, b.id)
        rec_events = [e for _, e in recorded]
        # thresholds changed live: [t_s, side, threshold_deg] each (the replayed angles apply them)
        changes = [[e.get("t"), e.get("side"), e.get("threshold_deg")] for e in rec_events
                   if e.get("event") == "threshold_changed"]
        w["blocks"].writerow([session.id, b.number, session.patient, b.started_utc, b.exercise, b.stance,
                              b.threshold_left_deg, b.threshold_right_deg, b.estimator, b.status, b.frame_count,
                              f"{b.duration_s:.3f}", _num(cal.get("mounting_tilt_deg")), json.dumps(b.settings),
                              json.dumps(changes) if changes else ""])
        review = review_block(conn, b)
        all_reps += [(b.number, r) for r in review.reps]
        samples = decode_samples(conn, b)
        n = len(samples["seq"])
        t_s = samples["t_s"]
        obl, fwd = angles_for(samples, review)
        if review.comparison is not None and not review.comparison.same:
            print(f"Note (block {b.number}): the angles come from a re-analysis with the stored "
                  f"settings and the changes made live. {review.comparison.sentence()}")
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
        w["reps"].writerow([_num(vals.get(k), "{:.4f}") for k in REP_COLUMNS + extra])
