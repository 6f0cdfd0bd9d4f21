"""Console view for headless use: the live angle, cue state and rep count as text.

In: a LiveBuffer's status, read on a timer. Out: one status line, redrawn in place on a terminal
(every 0.2 s) or appended as a plain line once a second, when it changed, when the output is a
file or pipe. Where the angle goes the line says the link's state while there is no live angle
(connecting, connection lost), so a frozen angle is never shown as if live. Damaged serial packets
and frames are counted in the line ("damaged N") instead of a warning printed between its lines.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from host.sinks.live import describe_obliquity

LINK_DOWN = {"disconnected": "Sensor connection lost: reconnecting…",
             "reconnecting": "Sensor connection lost: looking for the sensor…"}
DAMAGE_LOGGER = "host.protocol"  # where the decoder and the serial deframer warn of skipped data


def status_line(status, t_s: float, damaged: int = 0) -> str:
    """One line: time, the angle in words (or the link's state), the cue, the rep count."""
    if status.ended:
        return f"{t_s:7.1f} s  ended: {status.message}"
    bad = f"  damaged {damaged}" if damaged else ""
    if status.link in LINK_DOWN:
        return f"{t_s:7.1f} s  {LINK_DOWN[status.link]}  (no live angle){bad}"
    if status.link == "connecting" and not status.samples:
        return f"{t_s:7.1f} s  Connecting to the sensor…"  # the message is already the calibration's
    if not status.calibrated:
        return f"{t_s:7.1f} s  {status.message or 'Stand still and level to calibrate…'}{bad}"
    cue = "CUE " if status.cue_on else "    "
    lost = f"  lost {status.lost_samples}" if status.lost_samples else ""
    return (f"{t_s:7.1f} s  {describe_obliquity(status.obliquity_deg):<18} ({status.obliquity_deg:+5.1f}°)  "
            f"{cue} {'steps' if status.exercise == 'walk' else 'reps'} {status.reps}{lost}{bad}")


class _DamageCounter(logging.Filter):
    """Counts the protocol's skipped-data warnings and keeps them off the terminal (shown with -v)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            self.count += 1
            return logging.getLogger().getEffectiveLevel() < logging.WARNING  # -v: print them too
        return True


@contextlib.contextmanager
def _counting_damage():
    counter = _DamageCounter()
    loggers = [logging.getLogger(name) for name in logging.root.manager.loggerDict
               if name == DAMAGE_LOGGER or name.startswith(DAMAGE_LOGGER + ".")]
    for lg in loggers:
        lg.addFilter(counter)
    try:
        yield counter
    finally:
        for lg in loggers:
            lg.removeFilter(counter)


async def console_view(live, pipeline, out, interactive: bool, damage=None) -> None:
    from host.processing.exercise import summary_text
    from host.processing.gait import step_text
    period = 0.2 if interactive else 1.0
    shown_summary = None
    shown_step = None
    was_calibrated = False
    last_line = None
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
        line = status_line(status, pipeline.t_s, damage.count if damage is not None else 0)
        if interactive:
            out.write("\r" + line.ljust(78))
        elif line != last_line:  # a pipe or file: one line a second, only when it says something new
            out.write(line + "\n")
        last_line = line
        out.flush()


async def run_with_console(session, live, out):
    """Run a runner.StreamRunner with the console view beside it; returns the session's summary."""
    with _counting_damage() as damage:
        view = asyncio.create_task(console_view(live, session.pipeline, out, out.isatty(), damage))
        try:
            return await session.run()
        finally:
            view.cancel()
            if out.isatty():
                out.write("\n")
