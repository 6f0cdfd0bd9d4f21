"""HTML reports (`hiplevel report SESSION`, `hiplevel report --patient LABEL`).

In: the session store (host.store). A session report replays each block with its stored settings
(cmd_replay.replay_block, the live pipeline) for the per-sample angle, and takes reps, cues, set
summaries and markers as recorded live. A patient report reads only the indexed rep columns
(store.progress). Out: one self-contained HTML file (inline CSS and SVG drawn here; no script, no
network, no fonts or images to fetch), readable in any browser without the app.
"""
from __future__ import annotations

import html
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from host import __version__
from host import store
from host.cli import UserError
from host.commands.replay import compare_reps, config_for, replay_block
from host.commands.sessions import add_db_argument, describe_block, fmt_duration, get_session, open_db, plain_db_errors
from host.sinks.recorder import patient_label

PLOT_ROW_S = 120.0       # long blocks are drawn as rows of this many seconds
MAX_POINTS = 1600        # per plot row: min/max per bucket keeps the peaks
COLORS = {"left": "#1b6ca8", "right": "#c0392b", "angle": "#1f3a5f", "threshold": "#c0392b",
          "cue": "#f5a623", "cue_silent": "#b8b8b8", "marker": "#8e44ad", "grid": "#e3e3e3"}

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


def add_arguments(p) -> None:
    p.add_argument("session", metavar="SESSION", nargs="?",
                   help="session number (see `hiplevel sessions`), or 'last'")
    p.add_argument("--patient", type=patient_label, metavar="LABEL",
                   help="instead of one session: the patient's progress across sessions")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the HTML (default: in this folder)")
    add_db_argument(p)


@plain_db_errors
def run(args) -> int:
    if (args.session is None) == (args.patient is None):
        raise UserError("give a session number, or --patient LABEL for a patient's progress (one of the two)")
    conn = open_db(args)
    try:
        if args.patient is not None:
            try:
                rows = store.progress(conn, args.patient)
            except store.StoreError as e:
                raise UserError(str(e)) from None
            page = patient_report(args.patient, rows)
            default = f"patient-{_safe_name(args.patient)}-progress.html"
        else:
            session = get_session(conn, args.session)
            page = session_report(conn, session)
            default = f"session-{session.id}-report.html"
    finally:
        conn.close()
    out = Path(args.output or default)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report {out}: {e.strerror}") from None
    print(out)
    return 0


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "patient"


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def page(title: str, body: str) -> str:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
            f"<footer>Made by hiplevel {esc(__version__)} on {stamp}. Angles in degrees; a side's drop is "
            f"how far that hip is below level. Times are seconds on the sensor's clock from the first "
            f"sample of the block.</footer>\n</body></html>\n")


# ---- SVG charts (own code: a few lines of geometry, no library, nothing to fetch) ----

def nice_step(span: float, target: int = 6) -> float:
    if not span > 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-9 else "0"


class Chart:
    """An x-y chart in SVG user units; add shapes in data coordinates, then `svg()`."""

    def __init__(self, x_range, y_range, width=960, height=260, x_label="", y_label="",
                 margin=(52, 14, 22, 40)):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.w, self.h = width, height
        self.ml, self.mr, self.mt, self.mb = margin
        self.x_label, self.y_label = x_label, y_label
        self.under: list[str] = []   # bands, drawn below the grid lines' labels
        self.over: list[str] = []
        self.x_ticks: list[tuple[float, str]] | None = None

    def px(self, x):
        return self.ml + (x - self.x0) / (self.x1 - self.x0 or 1) * (self.w - self.ml - self.mr)

    def py(self, y):
        return self.mt + (self.y1 - y) / (self.y1 - self.y0 or 1) * (self.h - self.mt - self.mb)

    def band(self, xa, xb, color, title=""):
        xa, xb = max(xa, self.x0), min(xb, self.x1)
        if xb <= xa:
            return
        self.under.append(f'<rect x="{self.px(xa):.1f}" y="{self.mt}" width="{max(0.8, self.px(xb) - self.px(xa)):.1f}" '
                          f'height="{self.h - self.mt - self.mb}" fill="{color}" fill-opacity="0.35">'
                          f'<title>{esc(title)}</title></rect>')

    def hline(self, y, color, dash="6 4", label=""):
        if not self.y0 <= y <= self.y1:
            return
        self.over.append(f'<line x1="{self.ml}" x2="{self.w - self.mr}" y1="{self.py(y):.1f}" y2="{self.py(y):.1f}" '
                         f'stroke="{color}" stroke-width="1.3" stroke-dasharray="{dash}"/>')
        if label:
            self.over.append(f'<text x="{self.w - self.mr - 4}" y="{self.py(y) - 4:.1f}" text-anchor="end" '
                             f'fill="{color}">{esc(label)}</text>')

    def vline(self, x, color, label=""):
        if not self.x0 <= x <= self.x1:
            return
        self.over.append(f'<line x1="{self.px(x):.1f}" x2="{self.px(x):.1f}" y1="{self.mt}" y2="{self.h - self.mb}" '
                         f'stroke="{color}" stroke-width="1.5"><title>{esc(label)}</title></line>')
        if label:
            self.over.append(f'<text x="{self.px(x) + 3:.1f}" y="{self.mt + 11}" fill="{color}">{esc(label)}</text>')

    def line(self, xs, ys, color, width=1.4, dash=None, dots=False, title=""):
        pts = [(self.px(x), self.py(y)) for x, y in zip(xs, ys) if y is not None and not math.isnan(y)]
        if not pts:
            return
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.over.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                         f'stroke-linejoin="round"{extra}><title>{esc(title)}</title></polyline>')
        if dots:
            for x, y in pts:
                self.over.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{color}"/>')

    def bar(self, x, width, y_top, color, title=""):
        left, right = self.px(x - width / 2), self.px(x + width / 2)
        top, base = self.py(max(self.y0, min(self.y1, y_top))), self.py(max(self.y0, 0))
        self.over.append(f'<rect x="{left:.1f}" y="{min(top, base):.1f}" width="{right - left:.1f}" '
                         f'height="{abs(base - top):.1f}" fill="{color}"><title>{esc(title)}</title></rect>')

    def label(self, x, y, text, color="#333", anchor="middle"):
        self.over.append(f'<text x="{self.px(x):.1f}" y="{self.py(y):.1f}" text-anchor="{anchor}" '
                         f'fill="{color}">{esc(text)}</text>')

    def svg(self, title: str = "") -> str:
        parts = [f'<svg viewBox="0 0 {self.w} {self.h}" width="100%" role="img" aria-label="{esc(title)}">',
                 f'<rect x="{self.ml}" y="{self.mt}" width="{self.w - self.ml - self.mr}" '
                 f'height="{self.h - self.mt - self.mb}" fill="#fff" stroke="#999"/>']
        parts += self.under
        for v in ticks(self.y0, self.y1, 6):
            y = self.py(v)
            parts.append(f'<line x1="{self.ml}" x2="{self.w - self.mr}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{"#999" if abs(v) < 1e-9 else COLORS["grid"]}" stroke-width="1"/>')
            parts.append(f'<text x="{self.ml - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(v)}</text>')
        xt = self.x_ticks if self.x_ticks is not None else [(v, _fmt_tick(v)) for v in ticks(self.x0, self.x1, 10)]
        for v, text in xt:
            x = self.px(v)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.h - self.mb}" y2="{self.h - self.mb + 4}" stroke="#666"/>')
            parts.append(f'<text x="{x:.1f}" y="{self.h - self.mb + 16}" text-anchor="middle">{esc(text)}</text>')
        if self.x_label:
            parts.append(f'<text x="{(self.ml + self.w - self.mr) / 2:.0f}" y="{self.h - 4}" '
                         f'text-anchor="middle" fill="#555">{esc(self.x_label)}</text>')
        if self.y_label:
            parts.append(f'<text transform="translate(13 {(self.mt + self.h - self.mb) / 2:.0f}) rotate(-90)" '
                         f'text-anchor="middle" fill="#555">{esc(self.y_label)}</text>')
        parts += self.over
        parts.append("</svg>")
        return "\n".join(parts)


def envelope(t: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 * buckets points that keep every peak: min and max of each time bucket, in order."""
    ok = ~np.isnan(y)
    t, y = t[ok], y[ok]
    if len(t) <= 2 * buckets:
        return t, y
    edges = np.linspace(t[0], t[-1], buckets + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    out_t, out_y = [], []
    for a, b in zip(starts, np.r_[starts[1:], len(t)]):
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        for k in sorted({i, j}):
            out_t.append(t[k])
            out_y.append(y[k])
    return np.array(out_t), np.array(out_y)


# ---- session report ----

def angle_plots(t_s, obl, block: store.BlockInfo, cues, reps, marks, y_lim: float, t_cal: float | None) -> str:
    end = float(t_s[-1]) if len(t_s) else 1.0
    rows = max(1, math.ceil(end / PLOT_ROW_S)) if end > PLOT_ROW_S * 1.25 else 1
    span = end / rows if rows == 1 else PLOT_ROW_S
    out = []
    thr_y = block.threshold_right_deg if block.free_side == "right" else -block.threshold_left_deg
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
                   f"cue {cue[0]:.1f}-{cue[1]:.1f} s" + ("" if cue[2] else " (silent: faded feedback)"))
        c.hline(thr_y, COLORS["threshold"], label=f"threshold, {block.free_side} hip {abs(thr_y):g}° low")
        sel = (t_s >= a) & (t_s <= b)
        et, ey = envelope(t_s[sel], obl[sel], MAX_POINTS // 2)
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
              '<span><i class="sw" style="background:{s};opacity:.5"></i>cue silent (faded)</span>'
              '<span><i class="sw" style="border-top:2px dashed {t};height:0"></i>threshold</span>'
              '<span>numbers: rep ends</span></p>').format(a=COLORS["angle"], c=COLORS["cue"],
                                                          s=COLORS["cue_silent"], t=COLORS["threshold"])
    return legend + "\n".join(out)


def cue_list(events: list[dict], end_t: float) -> list[tuple[float, float, bool]]:
    """(start, end, audible) per cue, from the recorded cue_on / cue_off events."""
    audible = [e.get("audible", True) for e in events if e.get("event") == "cue_on"]
    periods = store.cue_periods(events, end_t)
    return [(a, b, bool(audible[i]) if i < len(audible) else True) for i, (a, b) in enumerate(periods)]


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
            ("max_drop_deg", "max drop (°)"), ("duration_s", "duration (s)"), ("cued", "cue")]


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
    parts = [f"<h1>Session {session.id} — patient {esc(session.patient)}</h1>",
             f'<p class="meta">{esc(store.local_time(session.started_utc))} · {fmt_duration(session.duration_s)} '
             f"(min:s) · {esc(session.source or 'sensor')} · {esc(session.status)} · "
             f"{session.reps} reps, {session.cued_reps} with the cue</p>"]
    if session.status == "interrupted":
        parts.append('<p class="note">This session was interrupted (the app stopped before it could close '
                     "the recording); everything recorded up to then is shown.</p>")
    for b in session.blocks:
        parts.append(block_section(conn, session, b))
    return page(f"hiplevel session {session.id} ({session.patient})", "\n".join(parts))


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
    t_s = obl = np.zeros(0)
    if b.frame_count:
        try:
            r = replay_block(conn, b, config_for(b), speed=None, trace=True)
        except UserError as e:
            out.append(f'<p class="note">The angle plot cannot be drawn: {esc(e)}</p>')
            r = None
        if r is not None and r.samples["seq"]:
            t0 = r.pipeline.t0_us
            t_s = (np.asarray(r.samples["t_device_us"], dtype=np.int64) - t0) * 1e-6
            obl = np.asarray(r.samples["obliquity_deg"])
            verdict = compare_reps(reps, r.reps)
            if verdict.startswith("Differs"):
                out.append(f'<p class="note">The plot is a re-analysis with the stored settings, and it differs '
                           f"from what happened live (were settings changed during the block?): {esc(verdict)} "
                           f"The tables show the reps as recorded live.</p>")
    if len(t_s):
        y_lim = max(8.0, math.ceil((np.nanmax(np.abs(obl)) + 1.0) / 2) * 2,
                    b.threshold_left_deg + 2, b.threshold_right_deg + 2)
        cues = cue_list(recorded, float(t_s[-1]))
        t_cal = (b.calibration or {}).get("t")
        out.append(angle_plots(t_s, obl, b, cues, reps, marks, y_lim, t_cal))
        total = sum(c[1] - c[0] for c in cues)
        out.append(f"<p>{len(cues)} cue periods, {total:.1f} s in all"
                   + (f" ({sum(1 for c in cues if not c[2])} silent by faded feedback)" if any(not c[2] for c in cues)
                      else "") + ".</p>")
    else:
        out.append("<p>No angle data (the block ended before calibration).</p>")
    if b.exercise == "walk":  # steps instead of reps
        from host.report.walking import walk_section
        out.append(walk_section(recorded, table, esc))
        reps = None
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
    if reps is not None:
        out.append("<h3>Reps</h3>" + (rep_table(reps) if reps else "<p>No reps.</p>"))
    if marks:
        out.append("<h3>Therapist markers</h3>" + table(
            ["time (s)", "marker"], [[m["t_s"], m["label"]] for m in marks], left=0))
    if b.end:
        lost = b.end.get("lost_samples", 0)
        out.append(f'<p class="meta">{b.end.get("samples", 0)} samples, {lost} lost on the link.</p>')
    return "\n".join(out)


# ---- patient progress ----

def patient_report(patient: str, rows: list[dict]) -> str:
    parts = [f"<h1>Progress — patient {esc(patient)}</h1>"]
    if not rows:
        parts.append("<p>No sessions recorded for this patient yet.</p>")
    for exercise in sorted({r["exercise"] for r in rows}):
        ex_rows = [r for r in rows if r["exercise"] == exercise]
        parts.append(f"<h2>{esc(exercise)}</h2>")
        parts.append(progress_charts(ex_rows))
        parts.append(progress_table(ex_rows))
    return page(f"hiplevel progress, patient {patient}", "\n".join(parts))


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
