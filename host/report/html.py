"""HTML reports: one session (each block's angle plot, cues, reps, sets, markers) or a patient's
progress across sessions, as one self-contained page (inline CSS and SVG; no script, no network, no
fonts or images to fetch), readable in any browser without the app.

In: the session store (host.store) and, for the angle plots, host.session.review (each block
replayed with its stored settings through the live pipeline, its samples streamed one at a time into
host.report.svg.RowEnvelopes, which keeps per plot row the min and max of each bucket of 0.15 s: the
report's memory does not grow with the block's length); reps, cues, set summaries and markers
are as recorded live. A patient report reads only the indexed rep columns (store.progress) and,
for a patient who follows a programme, its adherence (host.session.programme.adherence).
Out: HTML text; host/commands/report.py writes it to a file; the web dashboard (host/server) shows
the same content (`session_body`, `patient_body`) inside its own pages.
"""
from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from host import __version__
from host import store
from host.errors import UserError
from host.report.svg import Chart, RowEnvelopes, envelope, esc
from host.report.text import describe_block, fmt_duration
from host.session.review import cue_list, review_block, step_within, threshold_steps

PLOT_ROW_S = 120.0       # long blocks are drawn as rows of this many seconds
ONE_ROW_S = PLOT_ROW_S * 1.25   # a block up to this long is one row (its own span)
MAX_POINTS = 1600        # per plot row: min/max per bucket keeps the peaks (800 buckets of a 894-px plot)
COLORS = {"left": "#1b6ca8", "right": "#c0392b", "angle": "#1f3a5f", "threshold": "#c0392b",
          "cue": "#f5a623", "cue_silent": "#b8b8b8", "marker": "#8e44ad"}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,Arial,sans-serif;color:#222;max-width:1000px;
margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#555}table{border-collapse:collapse;margin:.6em 0}th,td{padding:.25em .7em;text-align:right;
border-bottom:1px solid #e5e5e5}th{background:#f4f4f4}td.l,th.l{text-align:left}
svg{display:block;margin:.4em 0;font-size:12px}.note{background:#fff6e0;padding:.4em .8em;border-left:3px solid #f5a623}
.legend span{display:inline-block;margin-right:1.2em}.sw{display:inline-block;width:1.6em;height:.8em;
vertical-align:middle;margin-right:.3em}footer{margin-top:3em;color:#777;font-size:.85em}
@media print{h2{page-break-before:auto}svg{page-break-inside:avoid}}
"""


def page(title: str, body: str) -> str:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
            f"<footer>Made by hiplevel {esc(__version__)} on {stamp}. Angles in degrees; a side's drop is "
            f"how far that hip is below level. Times are seconds on the sensor's clock from the first "
            f"sample of the block.</footer>\n</body></html>\n")


# ---- session report ----

def angle_trace() -> RowEnvelopes:
    """What the plots keep of a block's obliquity while it is replayed: `review_block(conn, b,
    trace=...)` gives it each sample, `angle_plots` draws it."""
    return RowEnvelopes(PLOT_ROW_S, MAX_POINTS // 2, whole_s=ONE_ROW_S)


def angle_plots(trace: RowEnvelopes, block: store.BlockInfo, cues, reps, marks, y_lim: float,
                t_cal: float | None, events: list[dict] = ()) -> str:
    """The block's obliquity as rows of PLOT_ROW_S (one row over its own span when it is short),
    with the calibration, the cues, the threshold as it was at each moment, reps and markers."""
    end = float(trace.end_t) if trace.n else 1.0
    one_row = trace.whole is not None   # every sample kept: the block fits one row
    rows = 1 if one_row else max(1, math.ceil(end / PLOT_ROW_S))
    span = end / rows if rows == 1 else PLOT_ROW_S
    out = []
    sign = 1.0 if block.free_side == "right" else -1.0  # + = right hip low on the plot
    # the free side's limit as it was at each moment (changed live: a step line)
    steps_x, steps_y = threshold_steps(block, list(events), end)[block.free_side]
    for k in range(rows):
        a, b = k * span, min(end, (k + 1) * span) if rows > 1 else end
        c = Chart((a, a + span if rows > 1 else max(b, a + 1)), (-y_lim, y_lim), x_label="time (s)",
                  y_label="pelvic obliquity (°)")
        if t_cal:
            c.band(0.0, t_cal, "#cccccc", "calibration")
            if a < t_cal:
                c.label((a + min(t_cal, a + span)) / 2, 0.35 * y_lim, "calibrating", color="#999")
        for cue in cues:
            c.band(cue[0], cue[1], COLORS["cue"] if cue[2] else COLORS["cue_silent"],
                   f"cue {cue[0]:.1f}-{cue[1]:.1f} s" + ("" if cue[2] else " (silent: no tone played)"))
        sx, sy = step_within(steps_x, steps_y, a, b)
        c.line(sx, [sign * y for y in sy], COLORS["threshold"], width=1.3, dash="6 4",
               title=f"threshold ({block.free_side} hip low)")
        c.label(b, sign * sy[-1] + 0.04 * y_lim * sign, f"threshold, {block.free_side} hip {sy[-1]:g}° low",
                color=COLORS["threshold"], anchor="end")
        for x in sorted({x for x in steps_x[1:-1] if a < x < b}):
            y = float(steps_y[np.searchsorted(steps_x, x, side="right") - 1])
            c.label(x, sign * y + 0.04 * y_lim * sign, f"{y:g}°", color=COLORS["threshold"], anchor="start")
        if one_row:
            t_s, obl = (np.frombuffer(x) for x in trace.whole)
            sel = (t_s >= a) & (t_s <= b)
            et, ey = envelope(t_s[sel], obl[sel], MAX_POINTS // 2)
        else:
            et, ey = trace.row(k)
            sel = et <= b   # the last row ends at the last sample, though an earlier one lay later
            et, ey = et[sel], ey[sel]
        c.line(et, ey, COLORS["angle"], title="obliquity")
        for r in reps:
            t = r.get("t")
            if t is not None and a <= t <= b:
                c.label(t, y_lim * 0.9, f"{r.get('index', '')}", color="#555")
        for m in marks:
            if m.get("t_s") is not None:
                c.vline(m["t_s"], COLORS["marker"], m["label"])
        c.label(a, y_lim * 0.97, "  ↑ right hip low", color="#777", anchor="start")
        c.label(a, -y_lim * 0.94, "  ↓ left hip low", color="#777", anchor="start")
        out.append(c.svg(f"obliquity {a:.0f}-{b:.0f} s"))
    legend = ('<p class="legend"><span><i class="sw" style="background:{a}"></i>obliquity (+ = right hip low)</span>'
              '<span><i class="sw" style="background:{c};opacity:.5"></i>cue sounding</span>'
              '<span><i class="sw" style="background:{s};opacity:.5"></i>cue silent (no tone played)</span>'
              '<span><i class="sw" style="border-top:2px dashed {t};height:0"></i>threshold</span>'
              '<span>numbers: rep ends</span></p>').format(a=COLORS["angle"], c=COLORS["cue"],
                                                          s=COLORS["cue_silent"], t=COLORS["threshold"])
    out[0] = legend + out[0]   # one join: a 60-minute block's rows are about 1.5 MB of text
    return "\n".join(out)


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.3g}"
    if v is None:
        return ""
    return esc(v)


def table(header: list[str], rows: list[list], left: int = 0) -> str:
    th = "".join(f'<th{" class=l" if i < left else ""}>{esc(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=l" if i < left else ""}>{_cell(v)}</td>' for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


REP_HEAD = [("index", "rep"), ("set", "set"), ("t", "end (s)"), ("low_side", "side"),
            ("max_drop_deg", "max drop (°)"), ("duration_s", "duration (s)"), ("cued", "cue"),
            ("feedback_given", "tone played")]


def rep_table(reps: list[dict]) -> str:
    known = [k for k, _ in REP_HEAD]
    extra = []
    for r in reps:
        extra += [k for k in r if k not in known and k not in ("event", "exercise") and k not in extra]
    header = [h for _, h in REP_HEAD] + [k.replace("_", " ") for k in extra]
    rows = [[r.get(k) for k in known + extra] for r in reps]
    return table(header, rows)


def side_table(reps: list[dict]) -> str:
    stats = store.side_stats(reps)
    if not stats:
        return "<p>No reps.</p>"
    rows = [[f"{side} hip low", s["reps"], s["cued"], s["worst_drop_deg"], s["mean_drop_deg"], s["mean_duration_s"]]
            for side, s in stats.items()]
    return table(["side", "reps", "with the cue", "worst drop (°)", "average drop (°)", "average duration (s)"],
                 rows, left=1)


def session_report(conn, session: store.SessionInfo) -> str:
    return page(f"hiplevel session {session.id} ({session.patient})", session_body(conn, session))


def session_body(conn, session: store.SessionInfo) -> str:
    """The session report's content without the page around it (the web dashboard embeds it)."""
    parts = [f"<h1>Session {session.id} — patient {esc(session.patient)}</h1>",
             f'<p class="meta">{esc(store.local_time(session.started_utc))} · {fmt_duration(session.duration_s)} '
             f"(min:s) · {esc(session.source or 'sensor')} · {esc(session.status)} · "
             f"{session.reps} reps, {session.cued_reps} with the cue</p>"]
    if session.status == "interrupted":
        parts.append('<p class="note">This session was interrupted (the app stopped before it could close '
                     "the recording); everything recorded up to then is shown.</p>")
    for b in session.blocks:
        parts.append(block_section(conn, session, b))
    return "\n".join(parts)


def block_section(conn, session, b: store.BlockInfo) -> str:
    recorded = [e for _, e in store.events(conn, b.id)]
    reps = [e for e in recorded if e.get("event") == "rep"]
    marks = store.markers(conn, b.id)
    out = [f"<h2>Block {b.number}: {esc(b.exercise)}</h2>", f"<p>{esc(describe_block(b))}."]
    if b.calibration:
        cal = b.calibration
        how = ", ".join(str(cal[k]) for k in ("method", "quality") if cal.get(k))
        out.append(f" Calibrated at {cal.get('t', 0):.1f} s{f' ({esc(how)})' if how else ''}; sensor tilt on the "
                   f"belt {cal.get('mounting_tilt_deg', '?')}°.")
    out.append(f" Status: {esc(b.status)}.</p>")
    changes = [e for e in recorded if e.get("event") == "threshold_changed"]
    if changes:
        out.append("<p>Thresholds changed live: " + "; ".join(
            f"{esc(e.get('side'))} to {e.get('threshold_deg')}° at {float(e.get('t', 0)):.1f} s" for e in changes)
            + ". Replay and plot apply each change at its moment.</p>")
    if b.calibration is None and b.frame_count:
        fails = [e for _, e in store.events(conn, b.id) if e.get("event") == "calibration_failed"]
        out.append('<p class="note">Calibration never finished'
                   + (f" ({len(fails)} attempt(s) refused; the last: {esc(fails[-1].get('message', ''))})"
                      if fails else "")
                   + f", so no reps were counted live. The data are recorded: <code>hiplevel replay "
                     f"{session.id} --calibration standing</code> calibrates from the recording's first still "
                     f"phase and counts the reps.</p>")
    trace = angle_trace()
    try:
        review = review_block(conn, b, trace=lambda seq, t_us, obl, fwd, t_s: trace.add(t_s, obl))
    except UserError as e:
        out.append(f'<p class="note">The angle plot cannot be drawn: {esc(e)}</p>')
        review, trace = None, angle_trace()
    if review is not None and trace.n:
        if not review.comparison.same:
            out.append(f'<p class="note">The plot is a re-analysis with the stored settings and the changes '
                       f"made live, and it differs from what happened live: "
                       f"{esc(review.comparison.sentence())} The tables show the reps as recorded live.</p>")
    if trace.n:
        y_lim = max(8.0, math.ceil(((trace.max_abs_y if trace.max_abs_y >= 0 else 0.0) + 1.0) / 2) * 2,
                    b.threshold_left_deg + 2, b.threshold_right_deg + 2,
                    *(float(e["threshold_deg"]) + 2 for e in recorded
                      if e.get("event") == "threshold_changed" and isinstance(e.get("threshold_deg"), (int, float))))
        cues = cue_list(recorded, float(trace.end_t))
        t_cal = (b.calibration or {}).get("t")
        out.append(angle_plots(trace, b, cues, reps, marks, y_lim, t_cal, recorded))
        total = sum(c[1] - c[0] for c in cues)
        out.append(f"<p>{len(cues)} cue periods, {total:.1f} s in all"
                   + (f" ({sum(1 for c in cues if not c[2])} silent: no tone was played)" if any(not c[2] for c in cues)
                      else "") + ".</p>")
    else:
        out.append("<p>No angle data (the block ended before calibration).</p>")
    walking = b.exercise == "walk"   # steps instead of reps
    if walking:
        from host.report.walking import walk_section
        out.append(walk_section(recorded, table, esc))
    else:
        out.append("<h3>Per side</h3>" + side_table(reps))
    summaries = [e for e in recorded if e.get("event") == "set_summary"]
    if summaries:
        try:
            from host.processing.exercise import summary_text
            lines = [summary_text(s) for s in summaries]
        except Exception:  # noqa: BLE001 - an older/newer summary format: show the numbers instead
            lines = [", ".join(f"{k} {v}" for k, v in s.items() if k != "event") for s in summaries]
        out.append("<h3>Sets</h3><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>")
    untoned = [r for r in reps if r.get("cued") and "feedback_given" in r and not r["feedback_given"]]
    if untoned:
        faded = sum(1 for r in untoned if r.get("feedback_scheduled") is False)
        out.append(f'<p class="note">{len(untoned)} of the reps with the cue got no tone: no tone was played'
                   + (f" ({faded} kept silent by faded feedback, the others had no sound output or were muted)"
                      if faded else " (no sound output, or muted)") + ".</p>")
    if not walking:
        out.append("<h3>Reps</h3>" + (rep_table(reps) if reps else "<p>No reps.</p>"))
    if marks:
        out.append("<h3>Therapist markers</h3>" + table(
            ["time (s)", "marker"], [[m["t_s"], m["label"]] for m in marks], left=0))
    if b.end:
        lost = b.end.get("lost_samples", 0)
        out.append(f'<p class="meta">{b.end.get("samples", 0)} samples, {lost} lost on the link.</p>')
    return "\n".join(out)


# ---- patient progress ----

def patient_report(patient: str, rows: list[dict], adherence: dict | None = None) -> str:
    return page(f"hiplevel progress, patient {patient}", patient_body(patient, rows, adherence))


def patient_body(patient: str, rows: list[dict], adherence: dict | None = None) -> str:
    """The progress report's content without the page around it (the web dashboard embeds it)."""
    parts = [f"<h1>Progress — patient {esc(patient)}</h1>"]
    if adherence and adherence["runs"]:
        parts.append(adherence_section(adherence))
    if not rows:
        parts.append("<p>No sessions recorded for this patient yet.</p>")
    for exercise in sorted({r["exercise"] for r in rows}):
        ex_rows = [r for r in rows if r["exercise"] == exercise]
        parts.append(f"<h2>{esc(exercise)}</h2>")
        parts.append(progress_charts(ex_rows))
        parts.append(progress_table(ex_rows))
    return "\n".join(parts)


FEEDBACK_WORDS = {"every-rep": "every rep", "bandwidth": "bandwidth", "faded": "faded"}


def adherence_section(a: dict) -> str:
    """The programme (`hiplevel today`) against its prescription: sessions per week, then each
    programme session with the feedback schedule in force, the reps and the pain per item."""
    weeks = [[w["week"], w["completed"], w["prescribed"], w["unfinished"] or None] for w in a["weeks"]]
    out = ["<h2>Programme: sessions done vs prescribed</h2>",
           table(["week", "sessions done", "prescribed", "started, not finished"], weeks, left=1)]
    rows = []
    for r in a["runs"]:
        for it in r["items"]:
            fb = FEEDBACK_WORDS[it["feedback"]] + (f" ({100 * it['cue_share']:.0f} % cued)"
                                                   if it["feedback"] == "faded" else "")
            rows.append([r["run"], store.local_time(r["started_utc"]), r["version"],
                         "yes" if r["completed"] else "not finished", f"{it['item']}. {it['exercise']}", fb,
                         it["reps"] if it["done"] else "not done", it["cued_reps"], it["pain"]])
    out += ["<h3>Programme sessions</h3>",
            table(["session", "date", "version", "complete", "item", "feedback schedule", "reps",
                   "with the cue", "pain (0-10)"], rows, left=5)]
    return "\n".join(out)


def progress_charts(rows: list[dict]) -> str:
    n = len(rows)
    xs = list(range(1, n + 1))
    labels = [(x, store.local_time(r["started_utc"], "%d %b")) for x, r in zip(xs, rows)]
    if len({t for _, t in labels}) < len(labels):  # several sessions a day: add the time
        labels = [(x, store.local_time(r["started_utc"], "%d %b %H:%M")) for x, r in zip(xs, rows)]
    if n > 12:  # keep the date labels readable
        step = math.ceil(n / 12)
        labels = labels[::step]
    vals = [v for r in rows for s in r["sides"].values() for v in (s["worst_drop_deg"], s["mean_drop_deg"])
            if v is not None]
    y_hi = max(8.0, math.ceil(max(vals, default=0) + 1))
    c = Chart((0.5, n + 0.5), (0, y_hi), height=280, x_label="session (date)", y_label="drop (°)")
    c.x_ticks = labels
    legend = []
    for side in ("left", "right"):
        worst = [r["sides"].get(side, {}).get("worst_drop_deg") for r in rows]
        mean = [r["sides"].get(side, {}).get("mean_drop_deg") for r in rows]
        if all(v is None for v in worst):
            continue
        col = COLORS[side]
        c.line(xs, worst, col, width=2.2, dots=True, title=f"{side} hip: worst drop")
        c.line(xs, mean, col, width=1.6, dash="5 4", dots=True, title=f"{side} hip: average drop")
        legend.append(f'<span><i class="sw" style="background:{col}"></i>{side} hip low: worst (solid), '
                      f"average (dashed)</span>")
    drop_svg = c.svg("drop per side per session")
    share_hi = 100.0
    c2 = Chart((0.5, n + 0.5), (0, share_hi), height=200, x_label="session (date)", y_label="reps with the cue (%)")
    c2.x_ticks = labels
    for x, r in zip(xs, rows):
        if r["reps"]:
            pct = 100.0 * r["cued_reps"] / r["reps"]
            c2.bar(x, 0.6, pct, COLORS["cue"], f"{r['cued_reps']} of {r['reps']} reps")
            c2.label(x, min(pct, 88) + 5, f"{r['cued_reps']}/{r['reps']}")
    return (f'<p class="legend">{"".join(legend)}</p>{drop_svg}'
            f"<p>Reps with the cue per session (cued / all reps):</p>{c2.svg('cued reps per session')}")


def progress_table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        left, right = r["sides"].get("left", {}), r["sides"].get("right", {})
        out.append([r["session"], store.local_time(r["started_utc"]), r["reps"], r["cued_reps"],
                    left.get("worst_drop_deg"), left.get("mean_drop_deg"),
                    right.get("worst_drop_deg"), right.get("mean_drop_deg"), r["status"]])
    return table(["session", "date", "reps", "with the cue", "left worst (°)", "left average (°)",
                  "right worst (°)", "right average (°)", "status"], out)
