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
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from host import store
from host.errors import UserError
from host.commands.db_args import add_db_argument, get_session, open_db, pick_blocks, plain_db_errors, session_arg
from host.protocol.frames import SampleDecoder
from host.session.review import compare_reps, config_for, replay_block, reps_of

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


def iter_samples(conn, block: store.BlockInfo):
    """Every sample the decoder yields from the stored frames, in physical units, one frame's batch
    at a time: (seq, t_device_us, t_s, t_host_s, acc_g, gyr_dps) arrays. t_s is the session's time
    axis, as the pipeline keeps it: time runs on across a sensor restart."""
    dec = SampleDecoder()
    t0_us, end_s = None, 0.0
    for t_h, frame, _late in store.frames(conn, block.id):
        batch = dec.feed(frame, t_h)
        if batch is None:
            continue
        n = len(batch.t_device_us)
        if t0_us is None or batch.restarted:
            t0_us = int(batch.t_device_us[0]) - (int(round((end_s + 1.0 / dec.info.rate_hz) * 1e6))
                                                 if t0_us is not None else 0)
        t_s = (batch.t_device_us - t0_us) * 1e-6
        end_s = float(t_s[-1])
        yield batch.seq + np.arange(n), batch.t_device_us, t_s, np.full(n, t_h), batch.acc_g, batch.gyr_dps


class SampleRows:
    """Writes the samples CSV of one block while its replay runs: `angle()` is the replay's trace (the
    angles of a calibrated sample), `finish()` writes what is left. The decoded samples are read
    alongside, in the same order as the pipeline takes them (the same decoder on the same frames),
    so the angles join them by sequence number and device time (a sensor that restarted numbers
    from 0 again) without holding either side in memory; samples before calibration get none."""

    def __init__(self, writer, block_no: int, samples, cue_periods: list[tuple[float, float]], open_cue: bool):
        self.w, self.block_no = writer, block_no
        self._batches = iter(samples)
        self._rows: list = []      # the current batch, as Python values
        self._i = 0
        self._cues, self._open_cue = cue_periods, open_cue
        self._held = None          # one row held back: an open cue ends at the last sample
        self._k, self._last_t = 0, -math.inf

    def _next_sample(self):
        while self._i >= len(self._rows):
            batch = next(self._batches, None)
            if batch is None:
                return None
            seq, t_us, t_s, t_h, acc, gyr = batch
            self._rows = list(zip(seq.tolist(), t_us.tolist(), t_s.tolist(), t_h.tolist(), acc.tolist(), gyr.tolist()))
            self._i = 0
        self._i += 1
        return self._rows[self._i - 1]

    def angle(self, seq: int, t_us: int, obl: float, fwd: float, _t_s: float = 0.0) -> None:
        while (s := self._next_sample()) is not None:
            if (s[0], s[1]) == (seq, t_us):
                self._write(s, obl, fwd)
                return
            self._write(s, math.nan, math.nan)

    def finish(self) -> None:
        while (s := self._next_sample()) is not None:
            self._write(s, math.nan, math.nan)
        if self._held is not None:
            row, t_s = self._held
            if self._open_cue and self._cues and t_s >= self._cues[-1][0] - 1e-6:
                row[-1] = 0  # an open cue ends at the block's last sample (store.cue_periods)
            self.w.writerow(row)
            self._held = None

    def _cue_on(self, t_s: float) -> int:
        cues = self._cues
        if t_s < self._last_t:
            self._k = 0  # the device clock went back: look from the first cue again
        self._last_t = t_s
        while self._k < len(cues) and t_s >= cues[self._k][1] - 1e-6:
            self._k += 1  # cues are in time order: one that ended is done with
        return int(any(a - 1e-6 <= t_s < b - 1e-6 for a, b in cues[self._k:self._k + 2]))

    def _write(self, s, obl: float, fwd: float) -> None:
        seq, t_us, t_s, t_h, acc, gyr = s
        row = [self.block_no, seq, t_us, f"{t_s:.6f}", f"{t_h:.6f}",
               f"{acc[0]:.6f}", f"{acc[1]:.6f}", f"{acc[2]:.6f}", f"{gyr[0]:.4f}", f"{gyr[1]:.4f}", f"{gyr[2]:.4f}",
               _num(obl), _num(fwd), self._cue_on(t_s)]
        if self._held is not None:
            self.w.writerow(self._held[0])
        self._held = (row, t_s)


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
        # an open cue (the block ended during it) ends at the last sample: known only at the end
        periods = store.cue_periods(rec_events, math.inf)
        rows_out = SampleRows(w["samples"], b.number, iter_samples(conn, b), periods,
                              open_cue=bool(periods) and periods[-1][1] == math.inf)
        live_reps = reps_of(rec_events)  # a walk's steps are its reps
        all_reps += [(b.number, r) for r in live_reps]
        if b.frame_count:
            r = replay_block(conn, b, config_for(b), speed=None, trace=rows_out.angle)
            comparison = compare_reps(live_reps, r.reps)
            if not comparison.same:
                print(f"Note (block {b.number}): the angles come from a re-analysis with the stored "
                      f"settings and the changes made live. {comparison.sentence()}")
        rows_out.finish()
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
