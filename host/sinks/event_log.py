"""JSON-lines event log: one object per line, written and flushed as each event happens, so a
reader can follow it live and a crash loses nothing already said.

Every event has "event" (its kind) and "t" (device seconds since the stream's first sample). The
kinds and their fields are documented in docs/events.md (tests/sinks/test_event_docs.py checks that
every kind the code emits is there): link (connected, disconnected, reconnecting, backfill,
sensor_restarted, gave_up, gap), calibration (calibrated, calibration_failed), exercise (cue_on,
cue_off, rep, set_summary, threshold_changed) and end.
"""
from __future__ import annotations

import json
import sys


class EventLog:
    def __init__(self, path: str | None):
        self._own = False
        self.file = None
        if path == "-":
            self.file = sys.stdout
        elif path:
            try:
                self.file = open(path, "w", buffering=1)
            except OSError as e:
                from host.errors import UserError
                raise UserError(f"cannot write the event log {path}: {e.strerror}") from None
            self._own = True
        self.failed = None

    def write(self, event: dict) -> None:
        if self.file is None or self.failed:
            return
        try:
            self.file.write(json.dumps(event, separators=(", ", ": ")) + "\n")
            self.file.flush()
        except OSError as e:  # full disk: say it once, keep the live feedback going
            self.failed = f"the event log stopped: {e.strerror}"
            print(f"hiplevel: {self.failed}", file=sys.stderr)

    def close(self) -> None:
        if self._own and self.file:
            self.file.close()
