"""JSON-lines event log: one object per line, written and flushed as each event happens, so a
reader can follow it live and a crash loses nothing already said.

Every event has "event" (its kind) and "t" (device seconds since the stream's first sample). The
kinds and their fields are documented in docs/events.md (tests/sinks/test_event_docs.py checks that
every kind the code emits is there): link (connected, disconnected, reconnecting, backfill,
sensor_restarted, gave_up, gap), calibration (calibrated, calibration_failed), exercise (cue_on,
cue_off, rep, set_summary, threshold_changed) and end. A log that cannot be written (full disk,
closed pipe) is reported once and dropped (host.sinks.side_output); the session goes on.
"""
from __future__ import annotations

import json
import sys

from host.sinks.side_output import SideFile


class EventLog:
    def __init__(self, path: str | None, report=None):
        self.out: SideFile | None = None
        if path == "-":
            self.out = SideFile("standard output", "the event log", report, stream=sys.stdout)
        elif path:
            self.out = SideFile(path, "the event log", report, buffering=1)

    @property
    def failed(self) -> str | None:
        return self.out.failed if self.out is not None else None

    def write(self, event: dict) -> None:
        if self.out is not None and self.out.file is not None:
            self.out.write(json.dumps(event, separators=(", ", ": ")) + "\n", flush=True)

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
