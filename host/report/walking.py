"""The walking part of a session's HTML report: a recorded `--exercise walk` block's summary, its
per-side numbers and its steps.

In: the block's recorded events (dicts, docs/events.md: `step`, `walk_summary`) and two helpers of
the report page (`table(header, rows)` and `esc(text)`, passed in so this module does not depend on
where the report code lives). Out: an HTML fragment.
"""
from __future__ import annotations

import statistics

STEP_COLUMNS = [("index", "step"), ("bout", "bout"), ("end_t", "end (s)"), ("foot", "foot down"),
                ("swing_side", "swing side"), ("drop_deg", "drop (°)"), ("duration_s", "duration (s)"),
                ("cued", "cued"), ("feedback_given", "cue heard")]


def walk_section(recorded: list[dict], table, esc) -> str:
    from host.processing.gait import walk_summary_text
    steps = [e for e in recorded if e.get("event") == "step"]
    summaries = [e for e in recorded if e.get("event") == "walk_summary"]
    out = []
    if summaries:
        out.append("<h3>Walk</h3><ul>" + "".join(f"<li>{esc(walk_summary_text(s))}</li>" for s in summaries)
                   + "</ul>")
    rows = []
    for side in ("left", "right"):
        d = [float(s["drop_deg"]) for s in steps if s.get("swing_side") == side]
        if d:
            rows.append([f"{side} side (swinging)", len(d), sum(1 for s in steps if s.get("swing_side") == side
                                                                  and s.get("cued")),
                         round(statistics.median(d), 2), round(max(d), 2)])
    out.append("<h3>Per side</h3>" + (table(["side", "steps", "cued", "median drop (°)", "worst drop (°)"], rows)
                                      if rows else "<p>No steps.</p>"))
    out.append("<h3>Steps</h3>" + (table([h for _, h in STEP_COLUMNS],
                                         [[s.get(k) for k, _ in STEP_COLUMNS] for s in steps])
                                   if steps else "<p>No steps.</p>"))
    return "\n".join(out)
