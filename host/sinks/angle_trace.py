"""The per-sample angle CSV of `run --angles FILE`.

In: one call per sample from the pipeline's trace hook (seq, t_device_us, obliquity_deg,
forward_tilt_deg). Out: a CSV file with those columns, written through a 64 kB buffer.
"""
from __future__ import annotations


class AngleTrace:
    """Per-sample angles as CSV: seq, t_device_us, obliquity_deg, forward_tilt_deg."""

    def __init__(self, path: str):
        self.file = open(path, "w", buffering=1 << 16)
        self.file.write("seq,t_device_us,obliquity_deg,forward_tilt_deg\n")

    def __call__(self, seq, t_device_us, obl, fwd):
        self.file.write(f"{seq},{t_device_us},{obl:.5f},{fwd:.5f}\n")

    def close(self):
        self.file.close()
