"""The per-sample angle CSV of `run --angles FILE`.

In: one call per sample from the pipeline's trace hook (seq, t_device_us, obliquity_deg,
forward_tilt_deg). Out: a CSV file with those columns, written through a 64 kB buffer. A file that
cannot be written (full disk) is reported once and dropped (host.sinks.side_output); the session
goes on.
"""
from __future__ import annotations

from host.sinks.side_output import SideFile


class AngleTrace(SideFile):
    """Per-sample angles as CSV: seq, t_device_us, obliquity_deg, forward_tilt_deg."""

    def __init__(self, path: str, report=None):
        super().__init__(path, "the angle file", report, buffering=1 << 16)
        self.write("seq,t_device_us,obliquity_deg,forward_tilt_deg\n")

    def __call__(self, seq, t_device_us, obl, fwd):
        if self.file is not None:
            self.write(f"{seq},{t_device_us},{obl:.5f},{fwd:.5f}\n")
