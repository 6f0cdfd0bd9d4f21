"""Console view for headless use: the live angle, cue state and rep count as text.

In: a LiveBuffer's status, read on a timer. Out: one status line, redrawn in place on a terminal
(every 0.2 s) or appended as a plain line once a second when the output is a file or pipe.
"""
from __future__ import annotations

import asyncio

from host.sinks.live import describe_obliquity


def status_line(status, t_s: float) -> str:
    """One line: time, the angle in words, the cue, the rep count."""
    if status.ended:
        return f"{t_s:7.1f} s  ended: {status.message}"
    if not status.calibrated:
        return f"{t_s:7.1f} s  {status.message or 'Stand still and level to calibrate…'}"
    cue = "CUE " if status.cue_on else "    "
    lost = f"  lost {status.lost_samples}" if status.lost_samples else ""
    return (f"{t_s:7.1f} s  {describe_obliquity(status.obliquity_deg):<18} ({status.obliquity_deg:+5.1f}°)  "
            f"{cue} {'steps' if status.exercise == 'walk' else 'reps'} {status.reps}{lost}")


async def console_view(live, pipeline, out, interactive: bool) -> None:
    from host.processing.exercise import summary_text
    from host.processing.gait import step_text
    period = 0.2 if interactive else 1.0
    shown_summary = None
    shown_step = None
    was_calibrated = False
    tick = 0
    while True:
        # steps are checked every 0.1 s so each one is on screen within 0.3 s of its contact
        await asyncio.sleep(0.1)
        status = live.status_copy()
        if status.last_step and status.last_step is not shown_step:
            shown_step = status.last_step
            out.write(("\r" if interactive else "") + step_text(shown_step).ljust(78) + "\n")
            out.flush()
        tick += 1
        if tick * 0.1 < period - 1e-9:
            continue
        tick = 0
        if status.calibrated and not was_calibrated and status.message:
            out.write(("\r" if interactive else "") + status.message.ljust(78) + "\n")  # how good it was
        was_calibrated = status.calibrated
        if status.last_summary and status.last_summary is not shown_summary:
            shown_summary = status.last_summary
            out.write(("\r" if interactive else "") + summary_text(shown_summary).ljust(78) + "\n")
        line = status_line(status, pipeline.t_s)
        if interactive:
            out.write("\r" + line.ljust(78))
        else:
            out.write(line + "\n")
        out.flush()


async def run_with_console(session, live, out):
    """Run a runner.Session with the console view beside it; returns the session's summary."""
    view = asyncio.create_task(console_view(live, session.pipeline, out, out.isatty()))
    try:
        return await session.run()
    finally:
        view.cancel()
        if out.isatty():
            out.write("\n")
