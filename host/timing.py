"""Device clock to host clock mapping, tracking drift (as stream libraries such as LSL do).

In: for each frame, the device time of its newest sample and the host time it arrived
(`add(t_device_s, t_host_s)`). Out: `to_host(t_device_s)` and `drift_ppm`. Transport delay only ever
adds to the host time, so the fit runs through the lower envelope: the earliest arrival (minimum
offset) per one-second bin of device time, a least-squares line over the last `window_s`.
"""
from __future__ import annotations

import collections

import numpy as np


class ClockMap:
    def __init__(self, window_s: float = 60.0, bin_s: float = 1.0):
        self.bin_s = bin_s
        self._bins = collections.deque(maxlen=max(2, int(window_s / bin_s)))
        self._bin_id = None
        self._bin_min = None  # (offset, t_device_s) of the current bin's earliest arrival
        self.offset_s = None
        self.slope = 0.0  # host seconds per device second, minus one

    def add(self, t_device_s: float, t_host_s: float) -> None:
        offset = t_host_s - t_device_s
        bin_id = int(t_device_s // self.bin_s)
        if bin_id != self._bin_id:
            if self._bin_min is not None:
                self._bins.append(self._bin_min)
                self._refit()
            self._bin_id, self._bin_min = bin_id, None
        if self._bin_min is None or offset < self._bin_min[0]:
            self._bin_min = (offset, t_device_s)
        if self.offset_s is None:
            self.offset_s, self._t_ref = offset, t_device_s

    def _refit(self) -> None:
        off = np.array([b[0] for b in self._bins])
        t = np.array([b[1] for b in self._bins])
        self._t_ref = t[-1]
        if len(t) >= 3:
            slope, intercept = np.polyfit(t - self._t_ref, off, 1)
            self.slope, self.offset_s = float(slope), float(intercept)
        else:
            self.offset_s = float(off.min())

    @property
    def drift_ppm(self) -> float:
        return self.slope * 1e6

    def to_host(self, t_device_s: float) -> float:
        if self.offset_s is None:
            raise ValueError("no samples yet")
        return t_device_s + self.offset_s + self.slope * (t_device_s - self._t_ref)
