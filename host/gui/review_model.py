"""What the history and review windows show, as plain data (no Qt): a recorded block re-analysed
(`BlockReview`, made by `load_block_review` on a worker thread with its own connection), each side's
limit over time (`threshold_steps`), and the small summaries of store.progress rows.

In: the session database and host.session.review.review_block (the block's frames through the live
pipeline). Out: dataclasses and dicts; nothing is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from host import store
from host.session.review import RepComparison, review_block, threshold_steps  # noqa: F401 (re-exported)


def exercise_name(exercise: str) -> str:
    return exercise.replace("-", " ").capitalize()


def drops_text(sides: dict, key: str) -> str:
    """'left 4.0°, right 8.9°' for the sides that have reps; '' when none."""
    parts = [f"{side} {sides[side][key]:.1f}°" for side in ("left", "right")
             if side in sides and sides[side].get(key) is not None]
    return ", ".join(parts)


def merge_sides(rows: list[dict]) -> dict:
    """Per-side numbers of several store.progress rows (one session, several exercises) as one."""
    out: dict = {}
    for r in rows:
        for side, s in r["sides"].items():
            m = out.setdefault(side, {"reps": 0, "cued": 0, "worst_drop_deg": None, "_sum": 0.0})
            if s.get("worst_drop_deg") is not None:
                m["worst_drop_deg"] = max(m["worst_drop_deg"] or -math.inf, s["worst_drop_deg"])
                m["_sum"] += s["mean_drop_deg"] * s["reps"]
            m["reps"] += s["reps"]
            m["cued"] += s["cued"]
    for m in out.values():
        m["mean_drop_deg"] = m.pop("_sum") / m["reps"] if m["reps"] else None
    return out


def date_labels(rows: list[dict]) -> list[str]:
    """Short dates for the chart's x axis; with the time when a day holds several sessions."""
    labels = [store.local_time(r["started_utc"], "%d %b") for r in rows]
    if len(set(labels)) < len(labels):
        labels = [store.local_time(r["started_utc"], "%d %b\n%H:%M") for r in rows]
    return labels


@dataclass
class BlockReview:
    block: store.BlockInfo
    t_s: np.ndarray                 # device seconds since the block's first sample (from calibration on)
    obliquity_deg: np.ndarray
    end_t_s: float                  # the end of the block on the same clock
    events: list[dict]              # as recorded live
    reps: list[dict]
    cues: list[tuple[float, float, bool]]   # (start, end, audible)
    markers: list[dict]
    thresholds: dict = field(default_factory=dict)   # side -> (t_s steps, deg steps)
    comparison: RepComparison | None = None   # do the replay's reps match the recorded ones
    replay_wall_s: float = 0.0

    def value_at(self, t: float) -> float:
        """The angle at device time t (the nearest sample), NaN before calibration or in a gap."""
        if not len(self.t_s) or t < self.t_s[0] - 0.05:
            return float("nan")
        i = int(np.clip(np.searchsorted(self.t_s, t), 1, len(self.t_s) - 1))
        if abs(self.t_s[i - 1] - t) <= abs(self.t_s[i] - t):
            i -= 1
        return float(self.obliquity_deg[i]) if abs(self.t_s[i] - t) < 0.1 else float("nan")

    def rep_at(self, t: float) -> tuple[dict | None, dict | None]:
        """(the rep under way at t, the last rep finished before t)."""
        before = None
        prev_end = -math.inf
        for r in self.reps:
            end = float(r.get("t", math.nan))
            start = end - float(r["duration_s"]) if r.get("duration_s") is not None else prev_end
            if start <= t <= end:
                return r, before
            if end < t:
                before = r
            prev_end = end
        return None, before

    def cue_at(self, t: float) -> tuple[bool, bool]:
        """(a cue was on at t, it was audible)."""
        for a, b, audible in self.cues:
            if a <= t < b:
                return True, audible
        return False, False


def load_block_review(db_path, block: store.BlockInfo) -> BlockReview:
    """Replay the block's frames through the live pipeline (full speed) for its angle curve. Runs on
    a worker thread with its own connection. Raises UserError / StoreError in plain words."""
    conn = store.connect(db_path)
    try:
        r = review_block(conn, block)
        marks = store.markers(conn, block.id)
    except store.DB_ERRORS as e:
        raise store.StoreError(store.explain(e, db_path)) from None
    finally:
        conn.close()
    return BlockReview(block=block, t_s=r.t_s, obliquity_deg=r.obliquity_deg, end_t_s=r.end_t_s,
                       events=r.events, reps=r.reps, cues=r.cues, markers=marks,
                       thresholds=threshold_steps(block, r.events, r.end_t_s), comparison=r.comparison,
                       replay_wall_s=r.replay_wall_s)
